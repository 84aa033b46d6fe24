/**
 * koa-jwt 4.0.4 behaviours, each asserted through the real middleware and
 * a real HTTP server: unknown options, isRevoked (also for cached tokens),
 * key / tokenKey, secret arrays and functions, .unless(), throwing for the
 * app's error handler, generic messages, a ctx.state.user apps can add to,
 * numeric subjects, and client_id / azp in state.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AuthError,
  ContextStore,
  currentUserClaims,
  currentUserUuid,
  TokenRevokedError,
  userContext,
  type UserContextOptions,
} from '../src/index.js';
import { jwksKeyResolver } from '../src/jwks.js';
import { SECRET, nowSec, tokenFor } from './support/tokens.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function serve(app: Koa) {
  app.silent = true;
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return request(server);
}

function newStore(options: ConstructorParameters<typeof ContextStore>[0] = {}): ContextStore {
  const store = new ContextStore({ sweepInterval: 0, ...options });
  cleanups.push(() => store.close());
  return store;
}

/** An app whose handler echoes what the middleware put in state. */
async function echo(options: Partial<UserContextOptions>, before: Koa.Middleware[] = [], store = newStore()) {
  const app = new Koa();
  for (const mw of before) app.use(mw);
  const mw = userContext({ store, algorithms: ['HS256'], secret: SECRET, ...options } as UserContextOptions);
  app.use(mw);
  app.use((ctx) => {
    ctx.body = { user: currentUserUuid() ?? null, state: ctx.state };
  });
  return { agent: await serve(app), mw, store };
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('options are checked by name', () => {
  it('throws a TypeError naming an unknown option and the closest valid one', () => {
    expect(() => userContext({ algorithms: ['HS256'], secret: SECRET, isRevokd: () => false } as never)).toThrow(
      /unknown option "isRevokd"; did you mean "isRevoked"\?/,
    );
    expect(() => userContext({ algorithms: ['HS256'], secrt: SECRET } as never)).toThrow(/"secrt".*"secret"/);
    expect(() => userContext({ algorithms: ['HS256'], secret: SECRET, zzzzzzzzzzz: 1 } as never)).toThrow(
      /unknown option "zzzzzzzzzzz" Valid options: .*isRevoked/,
    );
    expect(() => jwksKeyResolver({ jwksUri: 'https://x.test/jwks', cacheMaxAg: 5 } as never)).toThrow(/"cacheMaxAg".*"cacheMaxAge"/);
  });

  it('says why a koa-jwt (jsonwebtoken) option is not taken', () => {
    expect(() => userContext({ algorithms: ['HS256'], secret: SECRET, debug: true } as never)).toThrow(/"debug" is not supported: .*genericErrors/);
    expect(() => userContext({ algorithms: ['HS256'], secret: SECRET, ignoreExpiration: true } as never)).toThrow(/expired tokens are always refused/);
    expect(() => userContext({ algorithms: ['HS256'], secret: SECRET, undefinedValue: undefined } as never)).toThrow(TypeError);
  });

  it('checks the types of the new options', () => {
    const base = { algorithms: ['HS256'], secret: SECRET } as const;
    expect(() => userContext({ ...base, isRevoked: true } as never)).toThrow(/isRevoked must be a function/);
    expect(() => userContext({ ...base, key: '' })).toThrow(/options.key/);
    expect(() => userContext({ ...base, tokenKey: 3 } as never)).toThrow(/options.tokenKey/);
    expect(() => userContext({ ...base, throwErrors: 'yes' } as never)).toThrow(/throwErrors must be a boolean/);
    expect(() => userContext({ ...base, secret: [] })).toThrow(/empty array/);
    expect(() => userContext({ ...base, requireAccessTokenType: 'at+jwt' } as never)).toThrow(/requireAccessTokenType/);
  });
});

describe('isRevoked(ctx, claims, token)', () => {
  it('refuses a revoked token with 401 token_revoked, also when its verification is cached', async () => {
    const revoked = new Set<string>();
    const calls: { path: string; sub: unknown; token: string }[] = [];
    const { agent, mw } = await echo({
      isRevoked: async (ctx, claims, token) => {
        calls.push({ path: ctx.path, sub: claims['sub'], token });
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        return revoked.has(String(claims['jti']));
      },
    });
    const users = Array.from({ length: 6 }, () => ({ sub: randomUUID(), jti: randomUUID() }));
    const tokens = users.map((u) => tokenFor(u.sub, { jti: u.jti }));
    // Many users interleaving; every response is checked against the ledger.
    const first = await Promise.all(tokens.map((t) => agent.get('/a').set(bearer(t))));
    expect(first.map((r) => r.body.user)).toEqual(users.map((u) => u.sub));
    expect(mw.tokenCacheSize).toBe(6);
    revoked.add(users[2]!.jti);
    revoked.add(users[4]!.jti);
    const second = await Promise.all(tokens.map((t) => agent.get('/b').set(bearer(t))));
    second.forEach((res, i) => {
      if (i === 2 || i === 4) {
        expect(res.status).toBe(401);
        expect(res.body).toEqual({ error: 'token_revoked', message: expect.stringContaining('revoked') });
        expect(res.headers['www-authenticate']).toMatch(/error="invalid_token"/);
      } else {
        expect(res.status).toBe(200);
        expect(res.body.user).toBe(users[i]!.sub);
      }
    });
    expect(calls).toHaveLength(12);
    expect(calls.filter((c) => c.path === '/b').map((c) => [c.sub, c.token]).sort()).toEqual(users.map((u, i) => [u.sub, tokens[i]]).sort());
  });

  it('answers synchronously too, and fails closed (503 with Retry-After) when the check throws or answers a non-boolean', async () => {
    let mode: 'ok' | 'throw' | 'reject' | 'string' = 'ok';
    const { agent } = await echo({
      isRevoked: (() => {
        if (mode === 'throw') throw new Error('db down');
        if (mode === 'reject') return Promise.reject(new Error('db down'));
        if (mode === 'string') return 'no';
        return false;
      }) as never,
    });
    const token = tokenFor(randomUUID());
    expect((await agent.get('/').set(bearer(token))).status).toBe(200);
    for (const m of ['throw', 'reject', 'string'] as const) {
      mode = m;
      const res = await agent.get('/').set(bearer(token));
      expect(res.status, m).toBe(503);
      expect(res.body.error).toBe('revocation_check_unavailable');
      expect(res.headers['retry-after']).toBe('5');
    }
  });
});

describe('key, tokenKey, clientId', () => {
  it('puts the claims under key and the raw token under tokenKey', async () => {
    const { agent } = await echo({ key: 'jwtdata', tokenKey: 'rawToken' });
    const sub = randomUUID();
    const token = tokenFor(sub, { azp: 'spa-client' });
    const res = await agent.get('/').set(bearer(token));
    expect(res.status).toBe(200);
    expect(res.body.state.jwtdata.sub).toBe(sub);
    expect(res.body.state.user).toBeUndefined();
    expect(res.body.state.rawToken).toBe(token);
    expect(res.body.state.clientId).toBe('spa-client');
    // client_id (RFC 9068) wins over azp.
    const both = await agent.get('/').set(bearer(tokenFor(sub, { azp: 'spa', client_id: 'backend' })));
    expect(both.body.state.clientId).toBe('backend');
  });

  it('gives the app a ctx.state.user it can add to, while the scope keeps the frozen claims', async () => {
    const store = newStore();
    const app = new Koa();
    app.use(userContext({ store, algorithms: ['HS256'], secret: SECRET }));
    app.use((ctx) => {
      ctx.state['user'].roles = ['admin'];
      const scopeClaims = currentUserClaims()!;
      ctx.body = { added: ctx.state['user'].roles, scopeFrozen: Object.isFrozen(scopeClaims), scopeRoles: scopeClaims['roles'] ?? null };
    });
    const agent = await serve(app);
    const token = tokenFor(randomUUID());
    for (let i = 0; i < 2; i++) {
      // The second request is served from the token cache: its claims must not carry the first request's field.
      const res = await agent.get('/').set(bearer(token));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ added: ['admin'], scopeFrozen: true, scopeRoles: null });
    }
  });
});

describe('secret as an array and as a function', () => {
  const old = randomBytes(32).toString('base64url');
  const current = randomBytes(32).toString('base64url');

  it('tries an array of secrets in order (rolling secrets without kid)', async () => {
    const { agent } = await echo({ secret: [current, old] });
    const sub = randomUUID();
    for (const secret of [current, old]) {
      const res = await agent.get('/').set(bearer(tokenFor(sub, {}, secret)));
      expect(res.status).toBe(200);
      expect(res.body.user).toBe(sub);
    }
    const stranger = await agent.get('/').set(bearer(tokenFor(sub, {}, randomBytes(32))));
    expect(stranger.status).toBe(401);
    expect(stranger.body.error).toBe('invalid_token');
    // The old secret did sign it: the answer is about expiry, not the signature.
    const expired = await agent.get('/').set(bearer(tokenFor(sub, { iat: nowSec() - 100, exp: nowSec() - 10 }, old)));
    expect(expired.status).toBe(401);
    expect(expired.body.error).toBe('token_expired');
  });

  it('takes a secret function (header, payload) => key, as koa-jwt, which may resolve several keys', async () => {
    const seen: unknown[] = [];
    const { agent } = await echo({
      secret: async (header, payload) => {
        seen.push([header.alg, payload.sub]);
        return [old, current];
      },
    });
    const sub = randomUUID();
    const res = await agent.get('/').set(bearer(tokenFor(sub, {}, current)));
    expect(res.status).toBe(200);
    expect(seen).toEqual([['HS256', sub]]);
  });
});

describe('.unless()', () => {
  it('skips the middleware for matching paths and methods (koa-unless), and only for them', async () => {
    const store = newStore();
    const app = new Koa();
    const mw = userContext({ store, algorithms: ['HS256'], secret: SECRET });
    app.use(mw.unless({ path: ['/health', /^\/public/], method: 'OPTIONS' }));
    app.use((ctx) => {
      ctx.body = { user: currentUserUuid() ?? null };
    });
    const agent = await serve(app);
    expect((await agent.get('/health')).body).toEqual({ user: null });
    expect((await agent.get('/public/logo')).status).toBe(200);
    expect((await agent.options('/private')).status).toBe(200);
    const res = await agent.get('/private');
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('missing_token');
    const custom = userContext({ store, algorithms: ['HS256'], secret: SECRET }).unless((ctx) => ctx.get('x-internal') === '1');
    const app2 = new Koa().use(custom).use((ctx) => {
      ctx.body = 'ok';
    });
    const agent2 = await serve(app2);
    expect((await agent2.get('/').set('x-internal', '1')).status).toBe(200);
    expect((await agent2.get('/')).status).toBe(401);
  });
});

describe('throwErrors: the app error handler renders the failure', () => {
  it('throws an AuthError with status, expose, headers and originalError', async () => {
    const caught: AuthError[] = [];
    const handler: Koa.Middleware = async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        caught.push(error as AuthError);
        const e = error as AuthError;
        ctx.status = e.status;
        ctx.set(e.headers ?? {});
        ctx.body = { problem: e.error, detail: e.message, original: (e.originalError as Error | undefined)?.name ?? null };
      }
    };
    const { agent } = await echo({ throwErrors: true, realm: 'api' }, [handler]);
    const expired = await agent.get('/').set(bearer(tokenFor(randomUUID(), { iat: nowSec() - 100, exp: nowSec() - 10 })));
    expect(expired.status).toBe(401);
    expect(expired.body).toEqual({ problem: 'token_expired', detail: expect.stringContaining('expired'), original: 'TokenExpiredError' });
    expect(expired.headers['www-authenticate']).toMatch(/^Bearer realm="api", error="invalid_token", error_description=/);
    expect(caught[0]).toBeInstanceOf(AuthError);
    expect(caught[0]!.expose).toBe(true);
    expect(caught[0]!.originalError).toBeInstanceOf(jwt.TokenExpiredError);
    const missing = await agent.get('/');
    expect(missing.status).toBe(401);
    expect(missing.body.problem).toBe('missing_token');
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="api"');
  });

  it("is rendered by Koa's default error handler as koa-jwt's errors are (status, message, headers)", async () => {
    const { agent } = await echo({ throwErrors: true, isRevoked: () => true });
    const res = await agent.get('/').set(bearer(tokenFor(randomUUID())));
    expect(res.status).toBe(401);
    expect(res.text).toBe('The token has been revoked. Sign in again to get a new one.');
    expect(res.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    const caught: unknown[] = [];
    const app = new Koa();
    app.use(async (_ctx, next) => next().catch((e: unknown) => {
      caught.push(e);
      throw e;
    }));
    app.use(userContext({ store: newStore(), algorithms: ['HS256'], secret: SECRET, throwErrors: true, isRevoked: () => true }));
    await (await serve(app)).get('/').set(bearer(tokenFor(randomUUID())));
    expect(caught[0]).toBeInstanceOf(TokenRevokedError);
  });
});

describe('genericErrors', () => {
  it("answers every 401 with koa-jwt's 'Authentication Error' and no error_description, keeping the cause for logs", async () => {
    const rejected: unknown[] = [];
    const store = newStore();
    store.events.on('tokenRejected', (e) => rejected.push(e));
    const { agent } = await echo({ genericErrors: true }, [], store);
    for (const token of [tokenFor(randomUUID(), { exp: nowSec() - 10 }), tokenFor('not-a-uuid'), tokenFor(randomUUID(), {}, randomBytes(32))]) {
      const res = await agent.get('/').set(bearer(token));
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'unauthorized', message: 'Authentication Error' });
      expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    }
    expect((rejected as { error: string }[]).map((e) => e.error)).toEqual(['token_expired', 'invalid_subject', 'invalid_token']);
    // 400 (malformed header) is about the request's syntax and keeps its message.
    const malformed = await agent.get('/').set('Authorization', 'Basic abc');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toBe('invalid_request');
  });
});

describe('numeric subjects', () => {
  it('refuses { id: 123 } unless numericSubject is on, then uses "123" under the store policy', async () => {
    const token = jwt.sign({ id: 123, exp: nowSec() + 60 }, SECRET, { algorithm: 'HS256' });
    const strict = await echo({ subjectClaim: 'id' }, [], newStore({ userId: /^\d+$/ }));
    const refused = await strict.agent.get('/').set(bearer(token));
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: 'invalid_subject', message: expect.stringContaining('numericSubject: true') });
    const lax = await echo({ subjectClaim: 'id', numericSubject: true }, [], newStore({ userId: /^\d+$/ }));
    const res = await lax.agent.get('/').set(bearer(token));
    expect(res.status).toBe(200);
    expect(res.body.user).toBe('123');
    expect(res.body.state.userUuid).toBe('123');
    for (const bad of [-1, 1.5, 2 ** 60]) {
      const r = await lax.agent.get('/').set(bearer(jwt.sign({ id: bad, exp: nowSec() + 60 }, SECRET, { algorithm: 'HS256' })));
      expect(r.status, String(bad)).toBe(401);
      expect(r.body.error).toBe('invalid_subject');
    }
  });
});

describe('requireAccessTokenType (RFC 9068) without a provider', () => {
  it('takes typ at+jwt or application/at+jwt (any case), refuses JWT or none, and takes a function for providers without it', async () => {
    const { agent } = await echo({ requireAccessTokenType: true });
    const sub = randomUUID();
    const sign = (typ: string | undefined, claims: Record<string, unknown> = {}) =>
      jwt.sign({ sub, exp: nowSec() + 60, ...claims }, SECRET, { algorithm: 'HS256', header: { alg: 'HS256', ...(typ ? { typ } : {}) } as never });
    for (const typ of ['at+jwt', 'application/at+jwt', 'AT+JWT']) expect((await agent.get('/').set(bearer(sign(typ)))).status, typ).toBe(200);
    for (const typ of ['JWT', undefined, 'at+jwt2']) {
      const res = await agent.get('/').set(bearer(sign(typ)));
      expect(res.status, String(typ)).toBe(401);
      expect(res.body.error).toBe('invalid_token_type');
    }
    // Keycloak-style: header typ JWT, payload typ Bearer for access tokens and ID for ID tokens.
    const keycloak = await echo({ requireAccessTokenType: (_h, claims) => claims['typ'] === 'Bearer' });
    expect((await keycloak.agent.get('/').set(bearer(sign('JWT', { typ: 'Bearer' })))).status).toBe(200);
    expect((await keycloak.agent.get('/').set(bearer(sign('JWT', { typ: 'ID' })))).status).toBe(401);
  });
});
