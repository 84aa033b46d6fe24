/**
 * Every bad token is refused before any user context exists: 401 (400 for a
 * malformed Authorization header) with a JSON { error, message } body and a
 * Bearer challenge, nothing cached, no secret and no stack in the answer.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContextStore, userContext, type UserContextMiddleware, type UserContextOptions } from '../src/index.js';
import { buildApp, expectAuthError, listen, type TestApp } from './support/app.js';
import { RSA, SECRET, b64url, nowSec, signHs, signRs, tokenFor } from './support/tokens.js';

let store: ContextStore;
let mw: UserContextMiddleware;
let app: TestApp;

function setup(options: Partial<UserContextOptions> = {}): void {
  mw = userContext({ store, secret: SECRET, algorithms: ['HS256'], ...options });
  app = buildApp(mw);
}
beforeEach(() => {
  store = new ContextStore();
  setup();
});
afterEach(async () => {
  await store.close();
});

/** Sends GET /whoami with `authorization` and checks that nothing was created or cached. */
async function expectRejected(
  authorization: string | undefined,
  status: number,
  error: string,
  sub?: string,
): Promise<request.Response> {
  const cached = mw.tokenCacheSize;
  let req = request(app.app.callback()).get('/whoami');
  if (authorization !== undefined) req = req.set('Authorization', authorization);
  const res = await req;
  expectAuthError(res, status, error, [SECRET, RSA.privateKey]);
  expect(app.hits.count).toBe(0);
  expect(store.size).toBe(0);
  expect(store.scopesInFlight).toBe(0);
  if (sub !== undefined) expect(store.has(sub)).toBe(false);
  expect(mw.tokenCacheSize).toBe(cached);
  return res;
}

const sub = randomUUID();
const claims = (extra: Record<string, unknown> = {}) => ({ sub, iat: nowSec(), exp: nowSec() + 600, ...extra });

describe('a valid token', () => {
  it('passes and runs the route as its subject (control case)', async () => {
    const res = await request(app.app.callback()).get('/whoami').set('Authorization', `Bearer ${tokenFor(sub)}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user: sub, state: sub });
    expect(store.has(sub)).toBe(true);
    expect(mw.tokenCacheSize).toBe(1);
  });
});

describe('401 for a bad token', () => {
  it('no token: missing_token with a bare Bearer challenge', async () => {
    const res = await expectRejected(undefined, 401, 'missing_token');
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });

  it.each([
    ['garbage', 'garbage'],
    ['three junk segments', 'abc.def.ghi'],
    ['JSON that is not base64url', 'e30.e30.{}'],
    ['an empty signature', `${b64url({ alg: 'HS256' })}.${b64url(claims())}.`],
  ])('%s: invalid_token', async (_name, token) => {
    const res = await expectRejected(`Bearer ${token}`, 401, 'invalid_token');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token", error_description="[^"]*"$/);
  });

  it('wrong signature', async () => {
    await expectRejected(`Bearer ${signHs(claims(), 'x'.repeat(48))}`, 401, 'invalid_token', sub);
  });

  it('payload changed after signing', async () => {
    const [h, , s] = tokenFor(randomUUID()).split('.');
    await expectRejected(`Bearer ${h}.${b64url(claims())}.${s}`, 401, 'invalid_token', sub);
  });

  it.each([
    ['no signature', ''],
    ['a made-up signature', 'c2lnbmF0dXJl'],
  ])('alg "none" with %s', async (_name, signature) => {
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims())}.${signature}`;
    await expectRejected(`Bearer ${token}`, 401, 'invalid_token', sub);
  });

  it('expired: token_expired', async () => {
    await expectRejected(`Bearer ${signHs(claims({ exp: nowSec() - 5 }))}`, 401, 'token_expired', sub);
  });

  it('nbf in the future: token_not_yet_valid', async () => {
    await expectRejected(`Bearer ${signHs(claims({ nbf: nowSec() + 300 }))}`, 401, 'token_not_yet_valid', sub);
  });

  it('no exp: invalid_token', async () => {
    await expectRejected(`Bearer ${signHs({ sub, iat: nowSec() })}`, 401, 'invalid_token', sub);
  });

  it('longer than maxTokenLength: invalid_token', async () => {
    await expectRejected(`Bearer ${signHs(claims({ pad: 'x'.repeat(9000) }))}`, 401, 'invalid_token', sub);
  });

  it.each<[string, Record<string, unknown>]>([
    ['missing', {}],
    ['empty', { sub: '' }],
    ['an object', { sub: { id: sub } }],
    ['an array', { sub: [sub] }],
    ['a number', { sub: 12345 }],
    ['null', { sub: null }],
    ['"__proto__"', { sub: '__proto__' }],
    ['"constructor"', { sub: 'constructor' }],
    ['a 1 KB string', { sub: 'a'.repeat(1024) }],
    ['not a UUID', { sub: 'alice' }],
    ['a UUID with trailing text', { sub: `${sub}x` }],
  ])('sub %s: invalid_subject', async (_name, subject) => {
    const { sub: _drop, ...rest } = claims();
    const res = await expectRejected(`Bearer ${signHs({ ...rest, ...subject })}`, 401, 'invalid_subject');
    expect(res.text).not.toContain('a'.repeat(300));
  });

  it('wrong issuer or audience when they are configured', async () => {
    setup({ issuer: 'https://auth.example', audience: 'api' });
    await expectRejected(`Bearer ${signHs(claims({ iss: 'https://evil.example', aud: 'api' }))}`, 401, 'invalid_token', sub);
    await expectRejected(`Bearer ${signHs(claims({ iss: 'https://auth.example', aud: 'other' }))}`, 401, 'invalid_token', sub);
    await expectRejected(`Bearer ${signHs(claims({ aud: 'api' }))}`, 401, 'invalid_token', sub);
    // Control: the right issuer and audience pass.
    const ok = await request(app.app.callback()).get('/whoami')
      .set('Authorization', `Bearer ${signHs(claims({ iss: 'https://auth.example', aud: 'api' }))}`);
    expect(ok.status).toBe(200);
  });

  it('an HS384 token when only HS256 is allowed', async () => {
    await expectRejected(`Bearer ${signHs(claims(), SECRET, {}, 'HS384')}`, 401, 'invalid_token', sub);
  });

  it('an RS256 token when only HS256 is allowed', async () => {
    await expectRejected(`Bearer ${signRs(claims())}`, 401, 'invalid_token', sub);
  });

  it('an HS256 token signed with the RSA public key as HMAC secret when only RS256 is allowed', async () => {
    setup({ secret: RSA.publicKey, algorithms: ['RS256'] });
    await expectRejected(`Bearer ${signHs(claims(), RSA.publicKey)}`, 401, 'invalid_token', sub);
    const ok = await request(app.app.callback()).get('/whoami').set('Authorization', `Bearer ${signRs(claims())}`);
    expect(ok.status).toBe(200);
  });
});

describe('400 for a malformed Authorization header', () => {
  it.each([
    ['Basic credentials', 'Basic dXNlcjpwYXNz'],
    ['a bare scheme', 'Bearer'],
    ['two tokens', `Bearer ${tokenFor(sub)} ${tokenFor(sub)}`],
    ['a token without scheme', tokenFor(sub)],
  ])('%s: invalid_request', async (_name, header) => {
    const res = await expectRejected(header, 400, 'invalid_request', sub);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_request"/);
  });

  it('two Authorization headers, even carrying the same valid token', async () => {
    const server = await listen(app.app);
    try {
      const res = await new Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = httpRequest(`${server.url}/whoami`, { method: 'GET' }, (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (c: string) => (text += c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, text }));
        });
        req.on('error', reject);
        const token = tokenFor(sub);
        req.setHeader('Authorization', [`Bearer ${token}`, `Bearer ${token}`]);
        req.end();
      });
      expectAuthError({ ...res, body: JSON.parse(res.text) }, 400, 'invalid_request', [SECRET]);
      expect(store.size).toBe(0);
      expect(mw.tokenCacheSize).toBe(0);
      expect(app.hits.count).toBe(0);
    } finally {
      await server.close();
    }
  });
});
