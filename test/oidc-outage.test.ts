/**
 * The OpenID Connect provider (oidc-provider from npm, on 127.0.0.1) stops and
 * comes back while many clients call the API: the key set's cache age runs
 * out during the outage. A client-side ledger of every response shows 503
 * with Retry-After during the outage — never 401 for a valid token — and 200
 * again within retryAfterFailure of the provider's return, for an API that
 * had the keys and for one started during the outage.
 */
import type { Server } from 'node:http';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { ContextStore, currentUserUuid, userContext } from '../src/index.js';
import { jwksKeyResolver } from '../src/jwks.js';
import { audienceFor, OidcProvider } from './support/oidc.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function api(issuer: string) {
  const store = new ContextStore({ sweepInterval: 0 });
  const app = new Koa();
  app.silent = true;
  app.use(userContext({
    store,
    algorithms: ['RS256', 'ES256'],
    getKey: jwksKeyResolver({ issuer, cacheMaxAge: 500, timeout: 1_000 }),
    issuer,
    audience: [audienceFor('RS256'), audienceFor('ES256')],
    requireAccessTokenType: true,
    tokenCache: false,
  }));
  app.use((ctx) => {
    ctx.body = { user: currentUserUuid() };
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  cleanups.push(async () => {
    await new Promise((r) => server.close(r));
    await store.close();
  });
  return request(server);
}

interface Entry {
  api: 'warm' | 'cold';
  at: number;
  status: number;
  error: string | undefined;
  retryAfter: string | undefined;
  userOk: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('JWKS outage with a real OpenID Connect provider', () => {
  it('answers 503 with Retry-After during the outage, never 401, and recovers within seconds', async () => {
    const provider = await new OidcProvider(42111).start();
    cleanups.push(() => provider.stop());
    const tokens = await Promise.all(
      provider.serviceClients.flatMap((client) => (['RS256', 'ES256'] as const).map(async (alg) => ({ sub: client.id, token: await provider.accessToken(alg, client) }))),
    );
    const warm = await api(provider.issuer);
    let cold: Awaited<ReturnType<typeof api>> | undefined;
    const ledger: Entry[] = [];
    let running = true;
    const worker = async (n: number) => {
      for (let i = n; running; i++) {
        const { sub, token } = tokens[i % tokens.length]!;
        for (const [name, agent] of [['warm', warm], ['cold', cold]] as const) {
          if (agent === undefined) continue;
          const res = await agent.get('/').set('Authorization', `Bearer ${token}`);
          ledger.push({
            api: name, at: Date.now(), status: res.status, error: res.body.error, retryAfter: res.headers['retry-after'],
            userOk: res.status !== 200 || res.body.user === sub,
          });
        }
        await sleep(Math.random() * 30);
      }
    };
    const workers = Array.from({ length: 8 }, (_, n) => worker(n));
    await sleep(600);
    await provider.stop();
    const downAt = Date.now();
    await sleep(800);
    cold = await api(provider.issuer); // an API (re)started during the outage: it never had the keys
    await sleep(1_700);
    await provider.start();
    const upAt = Date.now();
    await sleep(2_500);
    running = false;
    await Promise.all(workers);

    expect(ledger.every((e) => e.userOk)).toBe(true);
    expect(ledger.filter((e) => e.status !== 200 && e.status !== 503)).toEqual([]);
    for (const e of ledger.filter((x) => x.status === 503)) {
      expect(e.error).toBe('key_unavailable');
      expect(Number(e.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    const figures: Record<string, unknown> = {};
    for (const name of ['warm', 'cold'] as const) {
      const entries = ledger.filter((e) => e.api === name);
      const during = entries.filter((e) => e.at > downAt && e.at <= upAt);
      const firstFailure = during.find((e) => e.status === 503);
      const lastFailure = entries.filter((e) => e.status === 503).at(-1);
      const after = entries.filter((e) => e.at > upAt);
      expect(during.filter((e) => e.status === 503).length, name).toBeGreaterThan(0);
      const recoveredIn = lastFailure === undefined ? 0 : Math.max(0, lastFailure.at - upAt);
      // Back within retryAfterFailure (1 s) plus one download; everything after it is 200.
      expect(recoveredIn, name).toBeLessThan(2_000);
      expect(after.filter((e) => e.at > upAt + 2_000).every((e) => e.status === 200), name).toBe(true);
      figures[name] = {
        requests: entries.length,
        duringOutage: { ok: during.filter((e) => e.status === 200).length, unavailable: during.filter((e) => e.status === 503).length, unauthorized: during.filter((e) => e.status === 401).length },
        firstFailureAfterStopMs: firstFailure === undefined ? null : firstFailure.at - downAt,
        lastFailureAfterRestartMs: recoveredIn,
        afterRestart: { ok: after.filter((e) => e.status === 200).length, unavailable: after.filter((e) => e.status === 503).length },
        retryAfter: [...new Set(entries.filter((e) => e.retryAfter !== undefined).map((e) => e.retryAfter))],
      };
    }
    console.info(`[oidc-outage] ${JSON.stringify(figures)}`);
  });
});
