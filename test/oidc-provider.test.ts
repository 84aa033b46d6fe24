/**
 * Tokens from a real OpenID Connect provider (oidc-provider from npm) on
 * 127.0.0.1, through OIDC discovery, jwksKeyResolver and the real
 * middleware: RS256/PS256/ES256 access tokens (client_credentials), EdDSA
 * refused with its reason, ID tokens (authorization_code) told from access
 * tokens (RFC 9068), key rotation, and the provider stopped and restarted.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { ContextStore, currentUserUuid, userContext, type UserContextOptions } from '../src/index.js';
import { jwksKeyResolver, type JwksKeyResolverOptions } from '../src/jwks.js';
import { audienceFor, newKeySet, OidcProvider } from './support/oidc.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function provider(port: number): Promise<OidcProvider> {
  const p = await new OidcProvider(port).start();
  cleanups.push(() => p.stop());
  return p;
}

async function api(p: OidcProvider, jwks: Partial<JwksKeyResolverOptions> = {}, options: Partial<UserContextOptions> = {}) {
  const store = new ContextStore({ sweepInterval: 0 });
  const app = new Koa();
  app.silent = true;
  app.use(userContext({
    store,
    algorithms: ['RS256', 'PS256', 'ES256'],
    getKey: jwksKeyResolver({ issuer: p.issuer, ...jwks }),
    issuer: p.issuer,
    audience: [audienceFor('RS256'), audienceFor('PS256'), audienceFor('ES256')],
    requireAccessTokenType: true,
    ...options,
  }));
  app.use((ctx) => {
    ctx.body = { user: currentUserUuid(), clientId: ctx.state['clientId'] ?? null, scope: ctx.state['user'].scope ?? null };
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  cleanups.push(async () => {
    await new Promise((r) => server.close(r));
    await store.close();
  });
  const agent = request(server);
  return { store, get: (token: string) => agent.get('/').set('Authorization', `Bearer ${token}`) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('tokens from a real OpenID Connect provider', () => {
  it('accepts RS256, PS256 and ES256 access tokens found through discovery, with one JWKS download for every kid', async () => {
    const p = await provider(42101);
    const t = await api(p);
    for (const alg of ['RS256', 'PS256', 'ES256'] as const) {
      for (const client of p.serviceClients) {
        const res = await t.get(await p.accessToken(alg, client));
        expect(res.status, alg).toBe(200);
        // client_credentials: sub and client_id are the client (RFC 9068 §2.2).
        expect(res.body).toEqual({ user: client.id, clientId: client.id, scope: 'api:read' });
      }
    }
    // Two kids (rsa-1, ec-1) and three algorithms: one discovery document, one key set.
    expect(p.jwksHits).toBe(2);
    // The audience is checked: a token for another API is refused.
    const other = await api(p, {}, { audience: 'urn:kuc:api:other' });
    const res = await other.get(await p.accessToken('RS256'));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
    expect(res.body.message).toMatch(/audience/);
  });

  it('refuses EdDSA with the reason: at configuration, and for a token from the provider', async () => {
    const p = await provider(42102);
    expect(() => userContext({ algorithms: ['EdDSA' as never], getKey: jwksKeyResolver({ issuer: p.issuer }) })).toThrow(
      /EdDSA.*not supported.*ES256, PS256 or RS256/,
    );
    const t = await api(p, {}, { audience: audienceFor('EdDSA') });
    const res = await t.get(await p.accessToken('EdDSA'));
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid_token', message: expect.stringMatching(/"EdDSA" is refused: .*no EdDSA/) });
    expect(t.store.size).toBe(0);
  });

  it('tells ID tokens from access tokens (RFC 9068 typ at+jwt) when the API audience is the client id', async () => {
    const p = await provider(42103);
    const account = randomUUID();
    const { idToken, accessToken } = await p.authorizationCode(account);
    const audience = [p.webClient.id, audienceFor('RS256')];
    // Without the check, an ID token whose audience is the API passes: the hazard the option closes.
    const lax = await api(p, {}, { audience, requireAccessTokenType: false });
    expect((await lax.get(idToken)).status).toBe(200);
    const strict = await api(p, {}, { audience });
    const refused = await strict.get(idToken);
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: 'invalid_token_type', message: expect.stringContaining('not an access token') });
    expect(refused.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    const ok = await strict.get(accessToken);
    expect(ok.status).toBe(200);
    // authorization_code: sub is the user, client_id the app that asked.
    expect(ok.body).toEqual({ user: account, clientId: p.webClient.id, scope: null });
  });

  it('follows a key rotation: new kids at once, cached verifications of a removed key end within cacheMaxAge', async () => {
    const p = await provider(42104);
    const cacheMaxAge = 1_000;
    const t = await api(p, { cacheMaxAge }, { tokenCache: { max: 100, maxTtl: 600_000 } });
    const oldToken = await p.accessToken('RS256');
    expect((await t.get(oldToken)).status).toBe(200);
    expect((await t.get(oldToken)).status).toBe(200); // now from the token cache
    // Rotation: the provider restarts with a new key set; the old keys are gone.
    await p.stop();
    p.keys = newKeySet('2');
    await p.start();
    const removedAt = Date.now();
    const newToken = await p.accessToken('ES256');
    expect((await t.get(newToken)).status).toBe(200); // unknown kid → one download, at once
    let refusedAfter = -1;
    while (Date.now() - removedAt < cacheMaxAge + 2_000) {
      const res = await t.get(oldToken);
      if (res.status !== 200) {
        expect(res.status).toBe(401);
        expect(res.body.error).toBe('invalid_token');
        refusedAfter = Date.now() - removedAt;
        break;
      }
      await sleep(50);
    }
    console.info(`[oidc] cached token of a removed key refused ${refusedAfter} ms after removal (cacheMaxAge ${cacheMaxAge} ms)`);
    expect(refusedAfter).toBeGreaterThanOrEqual(0);
    expect(refusedAfter).toBeLessThanOrEqual(cacheMaxAge + 500);
    expect((await t.get(newToken)).status).toBe(200);
  });
});
