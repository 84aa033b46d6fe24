/** userContext(): options, token sources, public routes and the scope it opens. */
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  currentUserClaims,
  getUserProvider,
  userContext,
  type UserContextOptions,
} from '../src/index.js';
import { buildApp, expectAuthError } from './support/app.js';
import { RSA, SECRET, tokenFor } from './support/tokens.js';

let store: ContextStore;
beforeEach(() => {
  store = new ContextStore();
});
afterEach(async () => {
  await store.close();
});

function appWith(options: Partial<UserContextOptions>, before: Koa.Middleware[] = []) {
  const mw = userContext({ store, ...options } as UserContextOptions);
  const built = buildApp(mw, before);
  built.router.get('/claims', (ctx) => {
    ctx.body = { claims: currentUserClaims() ?? null, state: ctx.state['user'] ?? null, provider: getUserProvider() };
  });
  return { ...built, mw, http: request(built.app.callback()) };
}

describe('constructor checks', () => {
  it.each<[string, unknown]>([
    ['no options', undefined],
    ['no algorithms', { secret: SECRET }],
    ['an empty algorithms list', { secret: SECRET, algorithms: [] }],
    ['algorithm none', { secret: SECRET, algorithms: ['none'] }],
    ['an HMAC secret shorter than 32 bytes', { secret: 'x'.repeat(31), algorithms: ['HS256'] }],
    ['a short Buffer secret', { secret: Buffer.alloc(16, 1), algorithms: ['HS256'] }],
    ['neither secret nor getKey', { algorithms: ['HS256'] }],
    ['both secret and getKey', { secret: SECRET, getKey: () => SECRET, algorithms: ['HS256'] }],
    ['HS and RS algorithms with one secret', { secret: SECRET, algorithms: ['HS256', 'RS256'] }],
    ['an RSA algorithm with a non-PEM secret', { secret: SECRET, algorithms: ['RS256'] }],
    ['an unknown algorithm', { secret: SECRET, algorithms: ['HS999'] }],
    ['a bad cookie name', { secret: SECRET, algorithms: ['HS256'], cookie: '' }],
    ['a realm with a quote', { secret: SECRET, algorithms: ['HS256'], realm: 'a"b' }],
    ['a non-function passthrough', { secret: SECRET, algorithms: ['HS256'], passthrough: 'yes' }],
    ['a zero token cache', { secret: SECRET, algorithms: ['HS256'], tokenCache: { max: 0 } }],
  ])('throws a TypeError for %s', (_name, options) => {
    expect(() => userContext(options as UserContextOptions)).toThrow(TypeError);
  });

  it('accepts a 32-byte secret, a PEM public key, or getKey with mixed algorithms', () => {
    expect(() => userContext({ store, secret: 'x'.repeat(32), algorithms: ['HS256'] })).not.toThrow();
    expect(() => userContext({ store, secret: RSA.publicKey, algorithms: ['RS256'] })).not.toThrow();
    expect(() => userContext({ store, getKey: () => SECRET, algorithms: ['HS256', 'RS256'] })).not.toThrow();
  });
});

describe('a valid token', () => {
  it('runs downstream middleware in the user\'s scope and exposes claims and user id', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'] });
    const id = randomUUID();
    store.commit(id, { provider: 'Google' });
    const res = await http.get('/claims').set('Authorization', `Bearer ${tokenFor(id, { role: 'admin' })}`);
    expect(res.status).toBe(200);
    expect(res.body.provider).toBe('Google');
    expect(res.body.claims).toMatchObject({ sub: id, role: 'admin' });
    expect(res.body.state).toEqual(res.body.claims);
    expect(store.scopesInFlight).toBe(0);
  });

  it('accepts the scheme in any case and normalises an upper-case UUID subject', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'] });
    const id = randomUUID();
    const res = await http.get('/whoami').set('Authorization', `bearer ${tokenFor(id.toUpperCase())}`);
    expect(res.body).toEqual({ user: id, state: id });
  });

  it('adds the realm to the challenge', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'], realm: 'api' });
    const res = await http.get('/whoami').set('Authorization', 'Bearer nope');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="api", error="invalid_token"/);
  });
});

describe('passthrough', () => {
  it('lets a request without a token through with no user', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'], passthrough: true });
    const res = await http.get('/whoami');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ user: null, state: null });
    expect(store.size).toBe(0);
  });

  it('still refuses a token that is present but bad', async () => {
    const { http, hits } = appWith({ secret: SECRET, algorithms: ['HS256'], passthrough: true });
    expectAuthError(await http.get('/whoami').set('Authorization', 'Bearer bad.token.here'), 401, 'invalid_token', [SECRET]);
    expectAuthError(await http.get('/whoami').set('Authorization', 'Basic abc'), 400, 'invalid_request');
    expect(hits.count).toBe(0);
  });

  it('as a function decides per request', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'], passthrough: (ctx) => ctx.path === '/whoami' });
    expect((await http.get('/whoami')).status).toBe(200);
    expectAuthError(await http.get('/claims'), 401, 'missing_token');
  });

  it('a valid token on a public route still gets its user', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'], passthrough: true });
    const id = randomUUID();
    expect((await http.get('/whoami').set('Authorization', `Bearer ${tokenFor(id)}`)).body.user).toBe(id);
  });
});

describe('token sources', () => {
  it('reads the token from the named cookie when there is no Authorization header', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'], cookie: 'session' });
    const id = randomUUID();
    const res = await http.get('/whoami').set('Cookie', `other=1; session=${tokenFor(id)}`);
    expect(res.body.user).toBe(id);
    const missing = await http.get('/whoami').set('Cookie', 'other=1');
    expectAuthError(missing, 401, 'missing_token');
    expect(missing.body.message).toContain('session');
    expectAuthError(await http.get('/whoami').set('Cookie', 'session=forged'), 401, 'invalid_token');
  });

  it('does not read cookies unless asked to', async () => {
    const { http } = appWith({ secret: SECRET, algorithms: ['HS256'] });
    expectAuthError(await http.get('/whoami').set('Cookie', `token=${tokenFor(randomUUID())}`), 401, 'missing_token');
  });

  it('tries getToken first and falls back when it returns nothing', async () => {
    const { http } = appWith({
      secret: SECRET,
      algorithms: ['HS256'],
      getToken: (ctx) => (typeof ctx.query['access_token'] === 'string' ? ctx.query['access_token'] : null),
    });
    const [a, b] = [randomUUID(), randomUUID()];
    const res = await http.get(`/whoami?access_token=${tokenFor(a)}`).set('Authorization', `Bearer ${tokenFor(b)}`);
    expect(res.body.user).toBe(a);
    expect((await http.get('/whoami').set('Authorization', `Bearer ${tokenFor(b)}`)).body.user).toBe(b);
    expectAuthError(await http.get('/whoami?access_token=zzz'), 401, 'invalid_token');
  });
});

describe('upstreamClaims', () => {
  const upstream = (claims: unknown): Koa.Middleware => async (ctx, next) => {
    ctx.state['user'] = claims;
    await next();
  };

  it('trusts ctx.state.user set by an earlier middleware', async () => {
    const id = randomUUID();
    const { http } = appWith({ upstreamClaims: true }, [upstream({ sub: id, scope: 'read' })]);
    const res = await http.get('/claims');
    expect(res.body.claims).toEqual({ sub: id, scope: 'read' });
    expect(store.has(id)).toBe(true);
  });

  it('takes a custom state key and subject claim', async () => {
    const id = randomUUID();
    const before: Koa.Middleware = async (ctx, next) => {
      ctx.state['auth'] = { uid: id };
      await next();
    };
    const { http } = appWith({ upstreamClaims: 'auth', subjectClaim: 'uid' }, [before]);
    expect((await http.get('/whoami')).body.user).toBe(id);
  });

  it('refuses upstream claims without a valid subject', async () => {
    const { http } = appWith({ upstreamClaims: true }, [upstream({ sub: 'admin' })]);
    expectAuthError(await http.get('/whoami'), 401, 'invalid_subject');
    expect(store.size).toBe(0);
  });

  it('without upstream state falls back to the token, or 401 when there is no key', async () => {
    const id = randomUUID();
    const withKey = appWith({ upstreamClaims: true, secret: SECRET, algorithms: ['HS256'] });
    expect((await withKey.http.get('/whoami').set('Authorization', `Bearer ${tokenFor(id)}`)).body.user).toBe(id);
    const withoutKey = appWith({ upstreamClaims: true });
    expectAuthError(await withoutKey.http.get('/whoami').set('Authorization', `Bearer ${tokenFor(id)}`), 401, 'missing_token');
  });
});
