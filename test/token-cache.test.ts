/** The verified-token cache and key resolution with getKey. */
import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ContextStore, currentUserClaims, userContext, type GetKey, type UserContextOptions } from '../src/index.js';
import { buildApp, expectAuthError, randomDelay } from './support/app.js';
import { RSA, SECRET, b64url, nowSec, signHs, signRs, tokenFor } from './support/tokens.js';

let store: ContextStore;
beforeEach(() => {
  store = new ContextStore();
});
afterEach(async () => {
  vi.useRealTimers();
  await store.close();
});

function server(options: Partial<UserContextOptions> = {}) {
  const mw = userContext({ store, algorithms: ['HS256'], ...(options.getKey ? {} : { secret: SECRET }), ...options });
  const { app } = buildApp(mw);
  const handler = app.callback();
  const get = (token: string) => request(handler).get('/whoami').set('Authorization', `Bearer ${token}`);
  return { mw, get };
}

describe('token cache', () => {
  it('does not verify a token again on its next request', async () => {
    const verify = vi.spyOn(jwt, 'verify');
    const { mw, get } = server();
    const id = randomUUID();
    const token = tokenFor(id);
    for (let i = 0; i < 3; i++) {
      const res = await get(token);
      expect(res.status).toBe(200);
      expect(res.body.user).toBe(id);
    }
    expect(verify).toHaveBeenCalledTimes(1);
    expect(mw.tokenCacheSize).toBe(1);
    await get(tokenFor(randomUUID()));
    expect(verify).toHaveBeenCalledTimes(2);
    expect(mw.tokenCacheSize).toBe(2);
  });

  it('never serves a cached token after its exp', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { mw, get } = server();
    const token = signHs({ sub: randomUUID(), exp: nowSec() + 2 });
    expect((await get(token)).status).toBe(200);
    expect(mw.tokenCacheSize).toBe(1);

    vi.setSystemTime(Date.now() + 3_000);
    const res = await get(token);
    expectAuthError(res, 401, 'token_expired', [SECRET]);
    expect(mw.tokenCacheSize).toBe(0);
  });

  it('never serves a cached token past the maxAge option', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { get } = server({ maxAge: 60 });
    const token = signHs({ sub: randomUUID(), iat: nowSec(), exp: nowSec() + 3_600 });
    expect((await get(token)).status).toBe(200);

    vi.setSystemTime(Date.now() + 61_000);
    // Without the cache jsonwebtoken refuses it ("maxAge exceeded"); the cache must not revive it.
    const fresh = server({ maxAge: 60, tokenCache: false });
    expectAuthError(await fresh.get(token), 401, 'token_expired');
    expectAuthError(await get(token), 401, 'token_expired');
  });

  it('is bounded by tokenCache.max', async () => {
    const { mw, get } = server({ tokenCache: { max: 2 } });
    for (let i = 0; i < 5; i++) expect((await get(tokenFor(randomUUID()))).status).toBe(200);
    expect(mw.tokenCacheSize).toBe(2);
  });

  it('a token that shares a cached token\'s signature (its cache key) but not its payload is verified in full and refused', async () => {
    const verify = vi.spyOn(jwt, 'verify');
    const { mw, get } = server();
    const victim = randomUUID();
    const token = tokenFor(victim);
    expect((await get(token)).status).toBe(200);
    // Same header and signature, another user's payload: the cache key (the
    // signature's tail) matches the cached entry, the token does not.
    const [header, , signature] = token.split('.');
    const forged = `${header}.${b64url({ sub: randomUUID(), exp: nowSec() + 3_600 })}.${signature}`;
    expectAuthError(await get(forged), 401, 'invalid_token');
    expect(verify).toHaveBeenCalledTimes(2);
    // The forged token neither evicted nor replaced the victim's entry.
    const again = await get(token);
    expect(again.status).toBe(200);
    expect(again.body.user).toBe(victim);
    expect(verify).toHaveBeenCalledTimes(2);
    expect(mw.tokenCacheSize).toBe(1);
  });

  it('gives every request its own mutable copy of the cached claims', async () => {
    const seen: Record<string, unknown>[] = [];
    const app = new Koa();
    app.use(userContext({ store, algorithms: ['HS256'], secret: SECRET }));
    app.use((ctx) => {
      const user = ctx.state['user'] as Record<string, unknown>;
      seen.push({ ...user });
      user['role'] = 'added-by-the-app';
      user['sub'] = 'overwritten-by-the-app';
      ctx.body = { ok: true };
    });
    const handler = app.callback();
    const id = randomUUID();
    const token = tokenFor(id, { scope: 'read' });
    for (let i = 0; i < 3; i++) {
      expect((await request(handler).get('/whoami').set('Authorization', `Bearer ${token}`)).status).toBe(200);
    }
    expect(seen).toHaveLength(3);
    for (const claims of seen) {
      expect(claims['sub']).toBe(id);
      expect(claims['scope']).toBe('read');
      expect(claims).not.toHaveProperty('role');
    }
  });

  for (const tokenCache of [undefined, false] as const) {
    it(`keeps nested claims per request: a push into ctx.state.user.roles reaches neither the next request nor currentUserClaims() (tokenCache ${tokenCache ?? 'on'})`, async () => {
      const claims = {
        roles: ['user'],
        scope: ['read'],
        realm_access: { roles: ['offline_access'] },
        resource_access: { api: { roles: ['read'] } },
      };
      const seen: unknown[] = [];
      const scopeViews: unknown[] = [];
      const refusals: string[] = [];
      const app = new Koa();
      app.use(userContext({ store, algorithms: ['HS256'], secret: SECRET, ...(tokenCache === false ? { tokenCache } : {}) }));
      app.use(async (ctx) => {
        const user = ctx.state['user'] as typeof claims;
        seen.push(structuredClone(user));
        // The app's own copy, all the way down.
        user.roles.push('admin');
        user.scope.push('write');
        user.realm_access.roles.push('admin');
        user.resource_access.api.roles.push('write');
        user.resource_access['api'] = { roles: ['everything'] };
        await randomDelay(3);
        const shared = currentUserClaims() as typeof claims;
        scopeViews.push(structuredClone(shared));
        // The scope's (and the cache's) claims are frozen at every depth.
        for (const mutate of [
          () => shared.roles.push('admin'),
          () => shared.realm_access.roles.push('admin'),
          () => { shared.resource_access.api.roles[0] = 'admin'; },
          () => { (shared.resource_access as Record<string, unknown>)['other'] = {}; },
        ]) {
          try {
            mutate();
          } catch (error) {
            refusals.push((error as Error).name);
          }
        }
        ctx.body = { ok: true };
      });
      const handler = app.callback();
      const token = tokenFor(randomUUID(), claims);
      // Concurrent requests with the same token, then one more after them.
      const statuses = await Promise.all(
        Array.from({ length: 4 }, () => request(handler).get('/').set('Authorization', `Bearer ${token}`).then((r) => r.status)),
      );
      statuses.push((await request(handler).get('/').set('Authorization', `Bearer ${token}`)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200]);
      expect(seen).toHaveLength(5);
      for (const user of seen) expect(user).toMatchObject(claims);
      expect(scopeViews).toHaveLength(5);
      for (const view of scopeViews) expect(view).toMatchObject(claims);
      expect(refusals).toEqual(Array.from({ length: 20 }, () => 'TypeError'));
    });
  }

  it('tokenCache: false verifies every request', async () => {
    const verify = vi.spyOn(jwt, 'verify');
    const { mw, get } = server({ tokenCache: false });
    const token = tokenFor(randomUUID());
    for (let i = 0; i < 4; i++) expect((await get(token)).status).toBe(200);
    expect(verify).toHaveBeenCalledTimes(4);
    expect(mw.tokenCacheSize).toBe(0);
  });
});

describe('getKey', () => {
  const k1 = 'k1-'.padEnd(40, '1');
  const k2 = 'k2-'.padEnd(40, '2');

  it('resolves the key by kid, asynchronously, once per cached token; rotation works', async () => {
    const keys = new Map([['k1', k1], ['k2', k2]]);
    const getKey = vi.fn<GetKey>(async (header) => keys.get(header.kid ?? '') ?? null);
    const { get } = server({ getKey });
    const id = randomUUID();
    const claims = { sub: id, exp: nowSec() + 600 };
    const t1 = signHs(claims, k1, { kid: 'k1' });
    const t2 = signHs(claims, k2, { kid: 'k2' });

    expect((await get(t1)).body.user).toBe(id);
    expect((await get(t1)).status).toBe(200);
    expect((await get(t2)).status).toBe(200);
    expect(getKey).toHaveBeenCalledTimes(2);
    expect(getKey.mock.calls[0]![0]).toMatchObject({ alg: 'HS256', kid: 'k1' });
    expect(getKey.mock.calls[0]![1]).toMatchObject({ sub: id });

    // A token naming one key but signed with another is refused.
    expectAuthError(await get(signHs(claims, k1, { kid: 'k2' })), 401, 'invalid_token', [k1, k2]);
    // After rotation k1 is unknown: new k1 tokens are refused.
    keys.delete('k1');
    expectAuthError(await get(signHs({ ...claims, jti: 'n' }, k1, { kid: 'k1' })), 401, 'invalid_token', [k1, k2]);
  });

  it.each([null, undefined])('returning %s: 401 invalid_token', async (value) => {
    const { mw, get } = server({ getKey: () => value });
    const id = randomUUID();
    expectAuthError(await get(tokenFor(id)), 401, 'invalid_token', [SECRET]);
    expect(store.has(id)).toBe(false);
    expect(mw.tokenCacheSize).toBe(0);
  });

  it.each([
    ['throwing', () => { throw new Error(`key server down ${SECRET}`); }],
    ['rejecting', () => Promise.reject(new Error(`key server down ${SECRET}`))],
  ])('%s: 503 key_unavailable with Retry-After', async (_name, getKey) => {
    const { mw, get } = server({ getKey: getKey as GetKey });
    const id = randomUUID();
    const res = await get(tokenFor(id));
    expectAuthError(res, 503, 'key_unavailable', [SECRET]);
    expect(res.headers['retry-after']).toBe('5');
    expect(store.size).toBe(0);
    expect(mw.tokenCacheSize).toBe(0);
  });

  it('a key that can never verify is a configuration error: 500 key_misconfigured without Retry-After, one warning per cause with the fix', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      if ((warning as { code?: string }).code === 'KUC_KEY_MISCONFIGURED') warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      // Lengths no other test uses: each is its own cause for the once-per-cause warning.
      const short = 'a-deployment-mistake'.slice(0, 17);
      const shortBuffer = Buffer.alloc(23, 7);
      for (const [key, via] of [[short, 'getKey'], [shortBuffer, 'secret']] as const) {
        const resolver: GetKey = () => key;
        const { mw, get } = server(via === 'getKey' ? { getKey: resolver } : { secret: resolver });
        const answers = await Promise.all(Array.from({ length: 5 }, () => get(tokenFor(randomUUID()))));
        for (const res of answers) {
          expectAuthError(res, 500, 'key_misconfigured', [SECRET, short]);
          expect(res.headers['retry-after']).toBeUndefined();
          expect(res.headers['www-authenticate']).toBeUndefined();
        }
        expect(mw.tokenCacheSize).toBe(0);
      }
      await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on the next tick
      expect(warnings.map((w) => w.message)).toEqual([
        expect.stringMatching(/17 bytes long; HMAC secrets must be at least 32 bytes .*randomBytes\(48\).*500 key_misconfigured/),
        expect.stringMatching(/23 bytes long; HMAC secrets must be at least 32 bytes/),
      ]);
      for (const warning of warnings) expect(warning.message).not.toContain(short);
    } finally {
      process.off('warning', onWarning);
    }
    // A real outage of the key source stays a 503 the client may retry.
    const { get } = server({ getKey: () => Promise.reject(new Error('IdP down')) });
    const outage = await get(tokenFor(randomUUID()));
    expectAuthError(outage, 503, 'key_unavailable');
    expect(outage.headers['retry-after']).toBe('5');
  });

  describe('with HMAC and RSA algorithms together', () => {
    const getKey: GetKey = (header) => (header.kid === 'rsa' ? RSA.publicKey : header.kid === 'hmac' ? k1 : null);
    const claims = () => ({ sub: randomUUID(), exp: nowSec() + 600 });

    it('accepts each kind with its own key (control case)', async () => {
      const { get } = server({ getKey, algorithms: ['HS256', 'RS256'] });
      expect((await get(signHs(claims(), k1, { kid: 'hmac' }))).status).toBe(200);
      expect((await get(signRs(claims(), RSA.privateKey, { kid: 'rsa' }))).status).toBe(200);
    });

    it('refuses an HS256 token signed with the RSA public key as HMAC secret', async () => {
      const { mw, get } = server({ getKey, algorithms: ['HS256', 'RS256'] });
      const forged = claims();
      const res = await get(signHs(forged, RSA.publicKey, { kid: 'rsa' }));
      expectAuthError(res, 401, 'invalid_token');
      expect(store.has(forged.sub)).toBe(false);
      expect(mw.tokenCacheSize).toBe(0);
    });

    it('a forged HS256 token does not break the RSA key for real RS256 tokens', async () => {
      const { get } = server({ getKey, algorithms: ['HS256', 'RS256'] });
      await get(signHs(claims(), RSA.publicKey, { kid: 'rsa' }));
      expect((await get(signRs(claims(), RSA.privateKey, { kid: 'rsa' }))).status).toBe(200);
    });
  });
});
