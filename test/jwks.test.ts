/**
 * Key rotation against a real JWKS endpoint on 127.0.0.1, through jwks-rsa
 * and the real middleware.
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { ContextStore, currentUserUuid, userContext } from '../src/index.js';
import { jwksKeyResolver, type JwksKeyResolverOptions } from '../src/jwks.js';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function newKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, publicKey };
}

/** A JWKS endpoint whose key set, answer and availability the test controls. */
class JwksServer {
  keys: SigningKey[] = [];
  mode: 'ok' | 'http500' | 'garbage' | 'empty' = 'ok';
  hits = 0;
  #server: http.Server | undefined;
  port = 0;

  async start(): Promise<this> {
    this.#server = http.createServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
      this.hits++;
      if (this.mode === 'http500') {
        res.statusCode = 500;
        res.end('boom');
        return;
      }
      res.setHeader('content-type', 'application/json');
      if (this.mode === 'garbage') return void res.end('{"keys": [');
      if (this.mode === 'empty') return void res.end('{"keys": []}');
      res.end(JSON.stringify({
        keys: this.keys.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: 'RS256', use: 'sig' })),
      }));
    });
    await new Promise<void>((resolve) => this.#server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  get uri(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }
}

const servers: JwksServer[] = [];
const stores: ContextStore[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function setup(options: Partial<JwksKeyResolverOptions> = {}) {
  const jwks = await new JwksServer().start();
  servers.push(jwks);
  const store = new ContextStore({ sweepInterval: 0 });
  stores.push(store);
  const app = new Koa();
  app.silent = true;
  app.use(userContext({ store, algorithms: ['RS256'], getKey: jwksKeyResolver({ jwksUri: jwks.uri, ...options }), tokenCache: false }));
  app.use((ctx) => {
    ctx.body = { user: currentUserUuid() };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const agent = request(server);
  const get = (token: string) => agent.get('/').set('Authorization', `Bearer ${token}`);
  return { jwks, store, get, close: () => new Promise((r) => server.close(r)) };
}

function sign(key: SigningKey, sub = randomUUID(), kid: string | undefined = key.kid): string {
  return jwt.sign({ sub }, key.privateKey, { algorithm: 'RS256', expiresIn: 600, ...(kid !== undefined ? { keyid: kid } : {}) });
}

describe('jwksKeyResolver', () => {
  it('validates its options', () => {
    expect(() => jwksKeyResolver(undefined as never)).toThrow(TypeError);
    expect(() => jwksKeyResolver({ jwksUri: 'not a url' })).toThrow(/jwksUri/);
    expect(() => jwksKeyResolver({ jwksUri: 'file:///etc/passwd' })).toThrow(/http: or https:/);
    expect(() => jwksKeyResolver({ jwksUri: 'https://x.test/jwks', cacheMaxAge: 0 })).toThrow(/cacheMaxAge/);
    expect(() => jwksKeyResolver({ jwksUri: 'https://x.test/jwks', jwksRequestsPerMinute: -1 })).toThrow(/jwksRequestsPerMinute/);
  });

  it('accepts a token whose kid is in the JWKS and caches the key', async () => {
    const t = await setup();
    const k1 = newKey('k1');
    t.jwks.keys = [k1];
    const user = randomUUID();
    for (let i = 0; i < 5; i++) {
      const res = await t.get(sign(k1, user));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ user });
    }
    expect(t.jwks.hits).toBe(1);
    await t.close();
  });

  it('picks up a new kid after rotation without a restart', async () => {
    const t = await setup();
    const k1 = newKey('k1');
    const k2 = newKey('k2');
    t.jwks.keys = [k1];
    expect((await t.get(sign(k1))).status).toBe(200);
    // Before the rotation is published, k2 is unknown: 401, not 503.
    const early = await t.get(sign(k2));
    expect(early.status).toBe(401);
    expect(early.body.error).toBe('invalid_token');
    t.jwks.keys = [k1, k2];
    const user = randomUUID();
    const res = await t.get(sign(k2, user));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user });
    expect((await t.get(sign(k1))).status).toBe(200);
    await t.close();
  });

  it('stops accepting a removed key once its cache age is over', async () => {
    const t = await setup({ cacheMaxAge: 50 });
    const k1 = newKey('k1');
    const k2 = newKey('k2');
    t.jwks.keys = [k1, k2];
    expect((await t.get(sign(k1))).status).toBe(200);
    t.jwks.keys = [k2];
    await new Promise((r) => setTimeout(r, 200));
    const res = await t.get(sign(k1));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
    expect((await t.get(sign(k2))).status).toBe(200);
    await t.close();
  });

  it('rejects an unknown kid with 401, a forged token with the right kid with 401, and creates no context', async () => {
    const t = await setup();
    const k1 = newKey('k1');
    t.jwks.keys = [k1];
    const unknown = await t.get(sign(newKey('nope')));
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual({ error: 'invalid_token', message: expect.stringContaining('No key is known') });
    const forged = await t.get(sign(newKey('k1')));
    expect(forged.status).toBe(401);
    expect(forged.body.error).toBe('invalid_token');
    // A token without kid is ambiguous once the set has two keys.
    t.jwks.keys = [k1, newKey('k2')];
    expect((await t.get(sign(newKey('x'), randomUUID(), undefined))).status).toBe(401);
    expect(t.store.size).toBe(0);
    await t.close();
  });

  it('rate-limits refetches: a flood of unknown kids costs at most jwksRequestsPerMinute fetches', async () => {
    const t = await setup({ jwksRequestsPerMinute: 3 });
    const k1 = newKey('k1');
    t.jwks.keys = [k1];
    const attacker = newKey('attacker');
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await t.get(sign(attacker, randomUUID(), `random-${i}`))).status);
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect(t.jwks.hits).toBeLessThanOrEqual(3);
    expect(t.jwks.hits).toBeGreaterThanOrEqual(1);
    await t.close();
  });

  it('answers 503 key_unavailable with Retry-After when the endpoint is down and the key was never fetched', async () => {
    const t = await setup();
    t.jwks.keys = [newKey('k1')];
    await t.jwks.stop();
    const res = await t.get(sign(newKey('k1')));
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'key_unavailable', message: expect.any(String) });
    // Retry-After is the resolver's retryAfterFailure (1 s by default), not a fixed 5 s.
    expect(res.headers['retry-after']).toBe('1');
    expect(t.store.size).toBe(0);
    await t.close();
  });

  it.each(['http500', 'garbage', 'empty'] as const)('answers 503 when the endpoint answers %s', async (mode) => {
    const t = await setup();
    t.jwks.keys = [newKey('k1')];
    t.jwks.mode = mode;
    const res = await t.get(sign(t.jwks.keys[0]!));
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('key_unavailable');
    await t.close();
  });

  it('keeps serving known keys from its cache while the endpoint is down; new kids get 503', async () => {
    const t = await setup();
    const k1 = newKey('k1');
    t.jwks.keys = [k1, newKey('k2')];
    expect((await t.get(sign(k1))).status).toBe(200);
    await t.jwks.stop();
    const user = randomUUID();
    const cached = await t.get(sign(k1, user));
    expect(cached.status).toBe(200);
    expect(cached.body).toEqual({ user });
    const fresh = await t.get(sign(newKey('k3')));
    expect(fresh.status).toBe(503);
    expect(fresh.body.error).toBe('key_unavailable');
    // The endpoint comes back (same port): the new kid is picked up within
    // retryAfterFailure (1 s), with 503 (never 401) until then.
    const k3 = newKey('k3');
    t.jwks.keys = [k1, k3];
    await t.jwks.start();
    const back = Date.now();
    const seen: number[] = [];
    for (;;) {
      const res = await t.get(sign(k3));
      seen.push(res.status);
      if (res.status === 200 || Date.now() - back > 3_000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen.at(-1)).toBe(200);
    expect(new Set(seen.slice(0, -1))).toEqual(new Set(seen.length > 1 ? [503] : []));
    expect(Date.now() - back).toBeLessThan(2_000);
    await t.close();
  });

  it('serves a stale key within cacheMaxAgeFallback when the endpoint is down', async () => {
    const t = await setup({ cacheMaxAge: 50, cacheMaxAgeFallback: 60_000 });
    const k1 = newKey('k1');
    t.jwks.keys = [k1];
    expect((await t.get(sign(k1))).status).toBe(200);
    await t.jwks.stop();
    await new Promise((r) => setTimeout(r, 200));
    expect((await t.get(sign(k1))).status).toBe(200);
    await t.close();
  });

  it('single-flights concurrent lookups of a new kid', async () => {
    const t = await setup();
    const k1 = newKey('k1');
    t.jwks.keys = [k1];
    const users = Array.from({ length: 20 }, () => randomUUID());
    const results = await Promise.all(users.map((u) => t.get(sign(k1, u))));
    expect(results.map((r) => r.body.user)).toEqual(users);
    expect(t.jwks.hits).toBe(1);
    await t.close();
  });
});
