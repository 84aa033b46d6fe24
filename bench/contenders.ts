/**
 * The HTTP contenders. Each one is a Koa 3 app serving the same route,
 * `GET /whoami` → `{ user, provider }`, where the provider is read three
 * calls deep (as application code does), so the only difference between
 * contenders is how the request is authenticated and how the user's context
 * is found.
 *
 * The list is open: add an entry to {@link CONTENDERS} and `bench/run.ts`
 * starts, warms, measures and reports it like the others (`--only` picks a
 * subset). An entry whose `unavailable()` returns a reason is skipped with
 * that reason printed, never faked.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import Koa from 'koa';
import { Redis } from 'ioredis';
import koaJwt from 'koa-jwt';
import { randomBytes, randomUUID } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ServerFixtures } from './fixtures.js';
import { providerOf } from './fixtures.js';

export interface Contender {
  /** Stable id, used on the command line and in results.json. */
  id: string;
  /** Row label of the table. */
  label: string;
  /** Which tokens the load generator sends. */
  tokens: 'hs' | 'rs';
  /** The route the load generator requests. @default '/whoami' ({@link ROUTE}) */
  path?: string;
  /** No authentication: answers every request as one fixed user (the start-up check only wants a 200). */
  anonymous?: true;
  /** One sentence: what this server does per request. */
  description: string;
  /** Why it cannot run here, or `undefined` when it can. Checked in the parent. */
  unavailable?: () => Promise<string | undefined>;
  /**
   * Measured only in the in-process ladder (bench/ladder.ts) and the accounting,
   * not in the HTTP rounds, unless `--only` names it.
   */
  ladderOnly?: true;
  /** Builds the app (in the server child). */
  build: (fixtures: ServerFixtures) => Promise<Koa>;
}

/** The route of the contenders that name no `path`. */
export const ROUTE = '/whoami';

/** Env var naming the library module to benchmark (`--lib`); default: the sources via tsx. */
export const LIB_ENV = 'KUC_BENCH_LIB';

type Library = typeof import('../src/index.js');

/** The library under test: `../src/index.js`, or e.g. `dist/esm/index.js` after `npm run build`. */
async function library(): Promise<Library> {
  const lib = process.env[LIB_ENV];
  if (lib === undefined || lib === '') return import('../src/index.js');
  return import(pathToFileURL(isAbsolute(lib) ? lib : resolve(lib)).href) as Promise<Library>;
}

/** The `/redis` subpath next to the library under test. */
async function redisEntry(): Promise<typeof import('../src/redis.js')> {
  const lib = process.env[LIB_ENV];
  if (lib === undefined || lib === '') return import('../src/redis.js');
  const base = pathToFileURL(isAbsolute(lib) ? lib : resolve(lib));
  return import(new URL('./redis.js', base).href) as Promise<typeof import('../src/redis.js')>;
}

/** Run by the server child before it exits (e.g. to delete its Redis keys). */
export const cleanups: Array<() => Promise<void>> = [];

function redisUrl(): string {
  return process.env['REDIS_URL'] || 'redis://127.0.0.1:6379';
}

/** Why Redis cannot be used, or `undefined` when it answers PING. */
async function redisUnavailable(url: string): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (error) {
    return `Redis is not reachable at ${url} (${error instanceof Error ? error.message : String(error)}); start one or set REDIS_URL`;
  } finally {
    client.disconnect();
  }
}

/** Sends `{ user, provider }` for GET /whoami, 404 otherwise. */
function route(readUser: () => string, readProvider: () => string | null): Koa.Middleware {
  // Three calls deep, like a handler → service → client factory chain.
  const level3 = (): string | null => readProvider();
  const level2 = (): string | null => level3();
  const level1 = (): string | null => level2();
  return function whoami(ctx) {
    if (ctx.method !== 'GET' || ctx.path !== ROUTE) return;
    ctx.body = { user: readUser(), provider: level1() };
  };
}

/**
 * Runs the rest of the chain and reacts once it has settled, as a scope that
 * is closed afterwards must: one promise per request (the `step-*` rows).
 */
function closedAfter(run: () => unknown, onSettled: () => void): Promise<unknown> {
  return Promise.resolve(run()).then(onSettled, (error: unknown) => {
    onSettled();
    throw error;
  });
}

/** The Bearer token's verified identity from a warm TokenVerifier cache (the `step-*` rows). */
function cachedIdentity(ctx: Koa.Context, verifier: InstanceType<Library['TokenVerifier']>): { userUuid: string; claims: Readonly<Record<string, unknown>> } {
  const header = ctx.req.headers.authorization;
  if (header === undefined || !header.startsWith('Bearer ')) return ctx.throw(401);
  const verified = verifier.verify(header.slice(7));
  if (verified instanceof Promise) throw new Error('the token cache missed; the step rows measure cache hits');
  return verified;
}

async function newKoa(): Promise<Koa> {
  const app = new Koa();
  app.silent = true;
  return app;
}

async function userContextApp(
  fixtures: ServerFixtures,
  token: { secret: string; algorithms: ['HS256'] | ['RS256']; tokenCache?: false },
): Promise<Koa> {
  const kuc = await library();
  const store = new kuc.ContextStore({ max: 10_000 });
  kuc.setDefaultStore(store);
  for (const [i, user] of fixtures.users.entries()) {
    await kuc.configureUser({ provider: providerOf(i), model: 'bench-model' }, user);
  }
  const app = await newKoa();
  app.use(kuc.userContext({ store, ...token }));
  app.use(route(() => kuc.currentUserUuid()!, () => kuc.getUserProvider()));
  return app;
}

export const CONTENDERS: readonly Contender[] = [
  {
    id: 'bare-koa',
    label: 'bare Koa 3 (no auth)',
    tokens: 'hs',
    anonymous: true,
    description: 'The same route with no authentication and no context: the ceiling.',
    async build() {
      const app = await newKoa();
      const user = '00000000-0000-4000-8000-000000000000';
      app.use(route(() => user, () => 'Google'));
      return app;
    },
  },
  {
    id: 'koa-als',
    label: 'bare Koa + AsyncLocalStorage.run',
    tokens: 'hs',
    anonymous: true,
    description:
      'No authentication; one object per user found by a Map lookup of a fixed user and AsyncLocalStorage.run around the rest: ' +
      'the floor of any ALS-based context on this Node version (ALS makes every promise pay a hook).',
    async build(fixtures) {
      const als = new AsyncLocalStorage<{ userUuid: string; provider: string }>();
      const contexts = new Map(fixtures.users.map((userUuid, i) => [userUuid, { userUuid, provider: providerOf(i) }]));
      const first = fixtures.users[0]!;
      const app = await newKoa();
      app.use(function enter(_ctx, next) {
        return als.run(contexts.get(first)!, next);
      });
      app.use(route(() => als.getStore()!.userUuid, () => als.getStore()!.provider));
      return app;
    },
  },
  {
    id: 'step-close',
    ladderOnly: true,
    label: 'ALS + closing reaction',
    tokens: 'hs',
    anonymous: true,
    description:
      'koa-als plus the one thing any scope that is closed after the request needs: a reaction on the rest of the ' +
      'chain (one promise per request) that closes it.',
    async build(fixtures) {
      const als = new AsyncLocalStorage<{ userUuid: string; provider: string }>();
      const context = { userUuid: fixtures.users[0]!, provider: providerOf(0) };
      let open = 0;
      const app = await newKoa();
      app.use(function enter(_ctx, next) {
        open++;
        return closedAfter(() => als.run(context, next), () => void open--);
      });
      app.use(route(() => als.getStore()!.userUuid, () => als.getStore()!.provider));
      return app;
    },
  },
  {
    id: 'step-token',
    ladderOnly: true,
    label: 'ALS + closing reaction + token cache hit',
    tokens: 'hs',
    description:
      "step-close plus reading the Bearer token and a hit in the library's own TokenVerifier cache; the ALS value is " +
      "the verified user's object from a Map.",
    async build(fixtures) {
      const kuc = await library();
      const verifier = new kuc.TokenVerifier({ secret: fixtures.hsSecret, algorithms: ['HS256'] }, new kuc.ContextStore({ max: 1 }).parseUserId);
      const contexts = new Map(fixtures.users.map((userUuid, i) => [userUuid, { userUuid, provider: providerOf(i) }]));
      const als = new AsyncLocalStorage<{ userUuid: string; provider: string }>();
      let open = 0;
      const app = await newKoa();
      app.use(function enter(ctx, next) {
        const { userUuid } = cachedIdentity(ctx, verifier);
        open++;
        return closedAfter(() => als.run(contexts.get(userUuid)!, next), () => void open--);
      });
      app.use(route(() => als.getStore()!.userUuid, () => als.getStore()!.provider));
      return app;
    },
  },
  {
    id: 'step-scope',
    ladderOnly: true,
    label: 'token cache hit + runAsUser (store, scope)',
    tokens: 'hs',
    description:
      "step-token, but the user's scope comes from the library: runAsUser() looks the context up in the ContextStore " +
      '(sliding TTL), opens a leased Scope in its AsyncLocalStorage and closes it after the chain; the route reads ' +
      'getUserProvider(). What remains to the full middleware is its own per-request work.',
    async build(fixtures) {
      const kuc = await library();
      const store = new kuc.ContextStore({ max: 10_000 });
      kuc.setDefaultStore(store);
      for (const [i, user] of fixtures.users.entries()) {
        await kuc.configureUser({ provider: providerOf(i), model: 'bench-model' }, user);
      }
      const verifier = new kuc.TokenVerifier({ secret: fixtures.hsSecret, algorithms: ['HS256'] }, store.parseUserId);
      const app = await newKoa();
      app.use(function enter(ctx, next) {
        const { userUuid, claims } = cachedIdentity(ctx, verifier);
        return kuc.runAsUser(userUuid, next, { store, claims });
      });
      app.use(route(() => kuc.currentUserUuid()!, () => kuc.getUserProvider()));
      return app;
    },
  },
  {
    id: 'koa-jwt',
    label: 'koa-jwt + Map + ALS',
    tokens: 'hs',
    description:
      'koa-jwt 4 with the string secret (what users write today), a Map lookup of the user, AsyncLocalStorage.run.',
    async build(fixtures) {
      const contexts = new Map<string, { userUuid: string; provider: string }>();
      for (const [i, userUuid] of fixtures.users.entries()) contexts.set(userUuid, { userUuid, provider: providerOf(i) });
      const als = new AsyncLocalStorage<{ userUuid: string; provider: string }>();
      const app = await newKoa();
      app.use(koaJwt({ secret: fixtures.hsSecret, algorithms: ['HS256'] }));
      app.use(function lookup(ctx, next) {
        const sub: unknown = (ctx.state['user'] as { sub?: unknown }).sub;
        const context = typeof sub === 'string' ? contexts.get(sub) : undefined;
        if (context === undefined) return ctx.throw(401, 'unknown user');
        return als.run(context, next);
      });
      app.use(route(() => als.getStore()!.userUuid, () => als.getStore()!.provider));
      return app;
    },
  },
  {
    id: 'kuc-hs256-cache',
    label: 'userContext HS256, token cache on',
    tokens: 'hs',
    description: 'This middleware with its defaults (verified-token cache on), getUserProvider() three calls deep.',
    build: (fixtures) => userContextApp(fixtures, { secret: fixtures.hsSecret, algorithms: ['HS256'] }),
  },
  {
    id: 'kuc-hs256-nocache',
    label: 'userContext HS256, token cache off',
    tokens: 'hs',
    description: 'The same with tokenCache: false: every request runs jwt.verify (HMAC over a KeyObject).',
    build: (fixtures) =>
      userContextApp(fixtures, { secret: fixtures.hsSecret, algorithms: ['HS256'], tokenCache: false }),
  },
  {
    id: 'kuc-rs256-nocache',
    label: 'userContext RS256, token cache off',
    tokens: 'rs',
    description: 'The same with RS256 tokens and tokenCache: false: an RSA signature check per request.',
    build: (fixtures) =>
      userContextApp(fixtures, { secret: fixtures.rsPublicKey, algorithms: ['RS256'], tokenCache: false }),
  },
  {
    id: 'kuc-redis-warm',
    label: 'userContext HS256, Redis store (warm)',
    tokens: 'hs',
    description:
      'Token cache on; contexts in Redis (RedisContextStore, REDIS_URL or 127.0.0.1:6379) with every user already ' +
      'in the near-cache, so a request reads Redis only to refresh the sliding TTL now and then.',
    unavailable: () => redisUnavailable(redisUrl()),
    async build(fixtures) {
      const kuc = await library();
      const keyPrefix = `kuc:bench:${randomUUID()}:`;
      const { RedisContextStore } = await redisEntry();
      const store = new RedisContextStore({ redis: redisUrl(), keyPrefix, encryptionKey: randomBytes(32) });
      if (!(await store.whenReady())) throw new Error(`Redis is not reachable at ${redisUrl()}`);
      cleanups.push(async () => {
        const admin = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
        try {
          const keys = await admin.keys(`${keyPrefix}*`);
          if (keys.length > 0) await admin.del(...keys);
        } finally {
          admin.disconnect();
          await store.close({ timeout: 1_000 });
        }
      });
      kuc.setDefaultStore(store);
      for (const [i, user] of fixtures.users.entries()) {
        await kuc.configureUser({ provider: providerOf(i), model: 'bench-model' }, user);
      }
      // Warm: every user's context is read once, so it is in this instance's near-cache.
      for (const user of fixtures.users) await kuc.runAsUser(user, async () => kuc.getUserProvider(), { store });
      const app = await newKoa();
      app.use(kuc.userContext({ store, secret: fixtures.hsSecret, algorithms: ['HS256'] }));
      app.use(route(() => kuc.currentUserUuid()!, () => kuc.getUserProvider()));
      return app;
    },
  },
];

/** The contender every ratio is relative to. */
export const BASELINE_ID = 'bare-koa';

/** The route the load generator requests from `contender`. */
export function pathOf(contender: Contender): string {
  return contender.path ?? ROUTE;
}
