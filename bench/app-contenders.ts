/**
 * The example app (examples/app.ts) term by term, for `npm run bench:app`.
 * Every row serves `GET /me/context` (the caller's context, secrets redacted)
 * and adds one layer of what the example runs to the row before:
 *
 *   me-bare → me-kuc → me-metrics → app-routes → app-admin → app-public → app-errors → app-logged → app-logged-debug
 *   and app-koa-router against app-logged (the same app on @koa/router)
 *
 * The `app-*` rows are the example's own `createApp()`, its middleware stack
 * cut down to the layers named (Koa composes `app.middleware` when the server
 * starts listening), so each layer is exactly the one the example runs; the
 * last two rows are the whole stack with the logger examples/server.ts makes
 * ({@link exampleLogger}), at its default level (info) and at debug. The example imports the sources (src/), so every
 * row here does too. They are imported when a row is built, so a server child
 * of another contender never loads the example.
 */
import Koa from 'koa';
import type { Logger } from 'pino';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContextStore, ContextStoreOptions } from '../src/index.js';
import type { Router } from '../examples/router.js';
import { cleanups, type Contender } from './contenders.js';
import { providerOf, type ServerFixtures } from './fixtures.js';

/** The route every row serves. */
export const APP_ROUTE = '/me/context';

/** The example's middleware, in the order createApp() mounts them (checked by name where they have one). */
const STACK = ['requestLoggerMiddleware', 'errors', 'publicRoutes', 'userContextMiddleware', 'adminRouterMiddleware', 'routes'] as const;
type Layer = (typeof STACK)[number];

/**
 * The logger examples/server.ts runs with (LOG_LEVEL unset: info; buffered asynchronous writes to
 * stdout). The bench makes a server's stdout a pipe it reads and drops, as a log collector would.
 * `KUC_BENCH_SYNC_LOG=1`: one synchronous write per line, as the example had it before (pino's default).
 */
export async function exampleLogger(level: 'info' | 'debug' = 'info'): Promise<Logger> {
  const [{ createLogger }, { default: pino }] = await Promise.all([import('../examples/app.js'), import('pino')]);
  const sync = process.env['KUC_BENCH_SYNC_LOG'] === '1';
  return createLogger({ level }, pino.destination(sync ? { dest: 1, sync: true } : { dest: 1, minLength: 4096, sync: false }));
}

/** The model each fixture user is configured with: the first the example allows for its provider. */
async function modelOf(i: number): Promise<string> {
  const { EXAMPLE_MODELS } = await import('../examples/providers/registry.js');
  return EXAMPLE_MODELS[providerOf(i) as keyof typeof EXAMPLE_MODELS][0];
}

const NOWHERE = 'http://127.0.0.1:9';

/** The example's store (LLM registry, an MCP server never connected to by GET /me/context). */
async function exampleStore(): Promise<ContextStore> {
  const [{ createStore }, { exampleLlmRegistry }] = await Promise.all([import('../examples/app.js'), import('../examples/providers/registry.js')]);
  return createStore({}, new Map([['warehouse', `${NOWHERE}/mcp`]]), exampleLlmRegistry(NOWHERE));
}

async function configureAll(store: ContextStore, fixtures: ServerFixtures): Promise<void> {
  const { configureUser, runAsUser } = await import('../src/index.js');
  for (const [i, user] of fixtures.users.entries()) {
    const patch = { provider: providerOf(i), model: await modelOf(i) };
    await runAsUser(user, () => configureUser(patch), { store });
  }
}

/** The middleware alone: userContext() and the /me/context handler as one function, on a store like the example's. */
async function middlewareApp(fixtures: ServerFixtures, metrics: boolean): Promise<Koa> {
  const [{ getUserRuntimeContext, redactContext, userContext }, { registerContextMetrics }, { Registry }] = await Promise.all([
    import('../src/index.js'),
    import('../src/metrics.js'),
    import('prom-client'),
  ]);
  const store = await exampleStore();
  await configureAll(store, fixtures);
  const auth = userContext({ store, secret: fixtures.hsSecret, algorithms: ['HS256'] });
  if (metrics) registerContextMetrics(store, { registry: new Registry(), middleware: auth });
  const app = new Koa();
  app.silent = true;
  app.use(auth);
  app.use(function me(ctx) {
    if (ctx.method === 'GET' && ctx.path === APP_ROUTE) ctx.body = redactContext(getUserRuntimeContext());
  });
  return app;
}

/**
 * The users' choices saved as examples/server.ts saves them by default: in SQLite (node:sqlite), the
 * store the cache in front of it; on a Node without node:sqlite, none (as server.ts then runs).
 */
async function examplePersistence(fixtures: ServerFixtures): Promise<ContextStoreOptions> {
  const { choicesKey, openChoicesDatabase } = await import('../examples/persistence/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'kuc-bench-choices-'));
  const choices = await openChoicesDatabase({ SQLITE_PATH: join(dir, 'choices.sqlite') }, choicesKey({}, fixtures.hsSecret));
  cleanups.push(async () => {
    await choices?.table.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return choices === undefined ? {} : { persistence: choices.persistence };
}

/**
 * The example's createApp(), with only `layers` of its middleware stack mounted;
 * `koaRouter`: its routes served by @koa/router (`routes()` and `allowedMethods()`,
 * the same table) in place of examples/router.ts.
 */
async function exampleApp(fixtures: ServerFixtures, layers: readonly Layer[], logLevel: 'info' | 'debug' = 'info', koaRouter = false): Promise<Koa> {
  const [{ createApp, createLogger }, { exampleLlmRegistry }] = await Promise.all([import('../examples/app.js'), import('../examples/providers/registry.js')]);
  const { app, store, router } = createApp({
    storeOptions: await examplePersistence(fixtures),
    secret: fixtures.hsSecret,
    llms: exampleLlmRegistry(NOWHERE),
    // Never connected by GET /me/context; the store is built with the MCP factory as the example's is.
    mcpServers: new Map([['warehouse', `${NOWHERE}/mcp`]]),
    logger: layers.includes('requestLoggerMiddleware') ? await exampleLogger(logLevel) : createLogger({ level: 'silent' }),
  });
  app.silent = true;
  await configureAll(store, fixtures);
  const mounted = app.middleware;
  if (mounted.length !== STACK.length) throw new Error(`examples/app.ts mounts ${mounted.length} middleware, the bench knows ${STACK.length}: update bench/app-contenders.ts`);
  const instead = koaRouter ? await koaRouterOf(router.table) : undefined;
  const kept = mounted.flatMap((fn, i) => {
    const name = (fn as { name?: string }).name ?? '';
    if (name !== STACK[i]) throw new Error(`examples/app.ts middleware ${i} is "${name}", the bench expects "${STACK[i]}"`);
    if (!layers.includes(STACK[i]!)) return [];
    return instead !== undefined && STACK[i] === 'routes' ? instead : [fn];
  });
  mounted.splice(0, mounted.length, ...kept);
  return app;
}

/** @koa/router 15 with the example's route table: its routes() and allowedMethods(). */
async function koaRouterOf(table: Router['table']): Promise<Koa.Middleware[]> {
  const { default: KoaRouter } = await import('@koa/router');
  const koaRouter = new KoaRouter();
  for (const { methods, path, handler } of table) koaRouter.register(path, [...methods], handler as Koa.Middleware);
  return [koaRouter.routes() as Koa.Middleware, koaRouter.allowedMethods() as Koa.Middleware];
}

const ROUTES: Layer[] = ['userContextMiddleware', 'routes'];
const ADMIN: Layer[] = [...ROUTES, 'adminRouterMiddleware'];
const PUBLIC: Layer[] = [...ADMIN, 'publicRoutes'];
const ERRORS: Layer[] = [...PUBLIC, 'errors'];

/**
 * The rows from the bare route up; each adds one layer to the one before, or
 * to its `base` (a row measured as an alternative to an earlier one).
 */
export const APP_LADDER: readonly (Contender & { adds: string; base?: string })[] = [
  {
    id: 'me-bare',
    label: 'bare Koa, the same JSON',
    adds: 'Koa, HTTP and a route answering a context-shaped JSON (the ceiling)',
    tokens: 'hs',
    anonymous: true,
    path: APP_ROUTE,
    description: 'GET /me/context answering the JSON the example answers (one fixed user, a fresh lastAccess), no authentication.',
    async build(fixtures) {
      const app = new Koa();
      app.silent = true;
      const user = fixtures.users[0]!;
      const model = await modelOf(0);
      app.use(function me(ctx) {
        if (ctx.method !== 'GET' || ctx.path !== APP_ROUTE) return;
        ctx.body = {
          provider: providerOf(0), model, mcpServerName: null, mcpServerNames: null, mcpServerId: null, awsRegion: null,
          azureDeploymentDetails: null, friendliDetails: null, modelProviderInProfile: null, serverConfigs: {},
          llmCredentials: null, llmInstance: null, mcpClient: null, userUuid: user, lastAccess: new Date().toISOString(), version: 1,
        };
      });
      return app;
    },
  },
  {
    id: 'me-kuc',
    label: 'userContext + the route',
    adds: 'userContext() (token cache hit, store, scope) and redactContext(getUserRuntimeContext()): the middleware alone',
    tokens: 'hs',
    path: APP_ROUTE,
    description: "The middleware with its defaults on a store like the example's, the route as one function.",
    build: (fixtures) => middlewareApp(fixtures, false),
  },
  {
    id: 'me-metrics',
    label: '+ registerContextMetrics',
    adds: "the store's Prometheus metrics (registerContextMetrics, fed by the store's events)",
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'me-kuc plus registerContextMetrics(store, { registry, middleware }).',
    build: (fixtures) => middlewareApp(fixtures, true),
  },
  {
    id: 'app-routes',
    label: 'example: userContext + its router',
    adds: "the example's createApp(): its store (users' choices saved in SQLite, as examples/server.ts runs it), metrics, and its router's routes() (examples/router.ts, find-my-way) in place of the one function",
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'createApp() with only userContext() and router.routes() mounted.',
    build: (fixtures) => exampleApp(fixtures, ROUTES),
  },
  {
    id: 'app-admin',
    label: '+ admin router',
    adds: 'adminRouter() in front of the routes',
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-routes plus the admin router.',
    build: (fixtures) => exampleApp(fixtures, ADMIN),
  },
  {
    id: 'app-public',
    label: '+ /metrics and /ready',
    adds: 'the routes answered before authentication (GET /metrics, GET /ready): one middleware',
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-admin plus publicRoutes (GET /metrics, GET /ready).',
    build: (fixtures) => exampleApp(fixtures, PUBLIC),
  },
  {
    id: 'app-errors',
    label: '+ JSON error handler',
    adds: "the example's JSON error handler around everything",
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-public plus the error handler.',
    build: (fixtures) => exampleApp(fixtures, ERRORS),
  },
  {
    id: 'app-logged',
    label: 'the example app (+ request log)',
    adds: 'requestLogger() with the logger examples/server.ts makes (LOG_LEVEL unset: info): failed and slow requests logged, this one at debug, dropped',
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'The whole example stack: app-errors plus the request logger.',
    build: (fixtures) => exampleApp(fixtures, STACK),
  },
  {
    id: 'app-logged-debug',
    label: 'the example app, LOG_LEVEL=debug',
    adds: 'a JSON access line for every request (pino, buffered asynchronous writes to stdout, a pipe)',
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-logged with the logger at debug: one access line per request.',
    build: (fixtures) => exampleApp(fixtures, STACK, 'debug'),
  },
  {
    id: 'app-koa-router',
    base: 'app-logged',
    label: 'the example app on @koa/router',
    adds: "@koa/router 15's routes() and allowedMethods(), the same routes, in place of examples/router.ts (measured against app-logged: what that choice costs)",
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-logged with its routes served by @koa/router.',
    build: (fixtures) => exampleApp(fixtures, STACK, 'info', true),
  },
];

export const APP_BASELINE_ID = 'me-bare';
