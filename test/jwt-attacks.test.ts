/**
 * Runs the JWT attack corpus (test/fixtures/jwt-attacks.ts) against real Koa
 * servers over real TCP, then fuzzes the Authorization header with fast-check.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextStore, currentUserUuid, userContext, type KeyInput, type UserContextOptions } from '../src/index.js';
import { ATTACKS, AUD, ISS, TOLERANCE, claims, forge, type Kit, type RsaPair, type Server } from './fixtures/jwt-attacks.js';
import { rawRequest } from './support/raw-http.js';

const NUM_RUNS = Number(process.env['FC_NUM_RUNS'] ?? 100);

function rsaPair(): RsaPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

let kit: Kit;
let attacker: http.Server;
let attackerHits = 0;

beforeAll(async () => {
  const rsa = rsaPair();
  const otherRsa = rsaPair();
  attacker = http.createServer((_req, res) => {
    attackerHits++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [{ ...otherRsa.publicKey.export({ format: 'jwk' }), kid: 'evil', alg: 'RS256', use: 'sig' }] }));
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  kit = {
    now: Math.floor(Date.now() / 1000),
    user: randomUUID(),
    rsa,
    otherRsa,
    hmac: randomBytes(48).toString('base64url'),
    attackerJwksUrl: `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/.well-known/jwks.json`,
  };
});

afterAll(async () => {
  await new Promise((resolve) => attacker.close(resolve));
});

function serverOptions(server: Server): Partial<UserContextOptions> {
  const common = { issuer: ISS, audience: AUD, clockTolerance: TOLERANCE } as const;
  if (server === 'rs') return { ...common, secret: kit.rsa.publicKey, algorithms: ['RS256'] };
  if (server === 'hs') return { ...common, secret: kit.hmac, algorithms: ['HS256'] };
  const keys = new Map<unknown, KeyInput>([
    ['rsa-1', kit.rsa.publicPem],
    ['hmac-1', kit.hmac],
  ]);
  return { ...common, algorithms: ['RS256', 'HS256'], getKey: (header) => keys.get(header.kid) ?? null };
}

async function start(server: Server) {
  const store = new ContextStore({ sweepInterval: 0 });
  const middleware = userContext({ store, ...serverOptions(server) } as UserContextOptions);
  const reached: Array<string | undefined> = [];
  const app = new Koa();
  app.silent = true;
  app.use(middleware);
  app.use((ctx) => {
    reached.push(currentUserUuid());
    ctx.body = { user: currentUserUuid() };
  });
  const listener = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => listener.once('listening', resolve));
  return {
    store,
    middleware,
    reached,
    port: (listener.address() as AddressInfo).port,
    close: async () => {
      await new Promise((resolve) => listener.close(resolve));
      await store.close();
    },
  };
}

describe('JWT attack corpus', () => {
  it('holds at least 30 attacks besides the accepted tokens, with unique names', () => {
    expect(ATTACKS.filter((c) => c.accepted !== true).length).toBeGreaterThanOrEqual(30);
    expect(new Set(ATTACKS.map((c) => c.name)).size).toBe(ATTACKS.length);
    for (const c of ATTACKS) {
      if (c.accepted === true) expect(c.expect.status).toBe(200);
      else expect(c.expect.status).toBeGreaterThanOrEqual(400);
    }
  });

  it.each(ATTACKS.map((c) => [c.name, c] as const))('%s', async (_name, attack) => {
    const server = await start(attack.server);
    try {
      const res = await rawRequest(server.port, '/', attack.headers(kit));
      expect(res.status).toBe(attack.expect.status);
      if (attack.accepted === true) {
        expect(res.body).toEqual({ user: kit.user });
        expect(server.reached).toEqual([kit.user]);
        expect(server.store.has(kit.user)).toBe(true);
        return;
      }
      expect(res.status).toBeLessThan(500);
      if (attack.expect.error === null) {
        expect(res.body).toBeUndefined();
      } else {
        expect(res.body).toMatchObject({ error: attack.expect.error, message: expect.any(String) });
        expect(Object.keys(res.body as object).sort()).toEqual(['error', 'message']);
        expect(res.text).not.toMatch(/\n\s+at /); // no stack trace
      }
      expect(server.reached).toEqual([]);
      expect(server.store.size).toBe(0);
      expect(server.middleware.tokenCacheSize).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('never fetched the attacker-supplied jku / x5u URLs', () => {
    expect(attackerHits).toBe(0);
  });
});

describe('Authorization header fuzzing', () => {
  it('answers any header value with 400/401 and a JSON code, never a context', async () => {
    const server = await start('keys');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const segment = fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/);
    const headerValue = fc.oneof(
      // printable ASCII (what Node accepts in a header value)
      fc.string({ unit: fc.constantFrom(...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))), maxLength: 200 }),
      fc.tuple(segment, segment, segment).map(([a, b, c]) => `Bearer ${a}.${b}.${c}`),
      fc.tuple(fc.jsonValue(), fc.jsonValue(), fc.constantFrom('HS256', 'RS256', 'none', 'hs256')).map(
        ([header, payload, alg]) => {
          const h = header !== null && typeof header === 'object' && !Array.isArray(header) ? { ...header, alg } : header;
          return `Bearer ${forge(kit, h, payload, 'hs')}`;
        },
      ),
      fc.record({ sub: fc.oneof(fc.string(), fc.jsonValue()), exp: fc.oneof(fc.integer(), fc.jsonValue()) }).map(
        (c) => `Bearer ${forge(kit, { alg: 'HS256', kid: 'hmac-1' }, { ...claims(kit), ...c }, { hmacKey: 'not-the-secret-but-long-enough-000000000' })}`,
      ),
    );
    try {
      await fc.assert(
        fc.asyncProperty(headerValue, async (value) => {
          const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
            const req = http.request(
              { host: '127.0.0.1', port: server.port, path: '/', agent, headers: { authorization: value.trim() === '' ? 'Bearer' : value } },
              (r) => {
                let body = '';
                r.setEncoding('utf8');
                r.on('data', (c: string) => (body += c));
                r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
              },
            );
            req.on('error', reject);
            req.end();
          });
          expect([400, 401]).toContain(res.status);
          const body = JSON.parse(res.body) as { error: string };
          expect(['invalid_request', 'invalid_token', 'invalid_subject', 'token_expired', 'token_not_yet_valid']).toContain(body.error);
          expect(server.store.size).toBe(0);
          expect(server.reached).toEqual([]);
        }),
        { numRuns: NUM_RUNS },
      );
    } finally {
      agent.destroy();
      await server.close();
    }
  });
});

describe('key configuration', () => {
  it('refuses a PEM public key given as an HMAC secret (anyone holding it could sign)', () => {
    const store = new ContextStore({ sweepInterval: 0 });
    expect(() => userContext({ store, secret: kit.rsa.publicPem, algorithms: ['HS256'] })).toThrow(/PEM key, not an HMAC secret/);
    expect(() => userContext({ store, secret: Buffer.from(kit.rsa.publicPem), algorithms: ['HS256'] })).toThrow(TypeError);
    expect(() => userContext({ store, secret: kit.rsa.publicPem, algorithms: ['RS256'] })).not.toThrow();
  });
});
