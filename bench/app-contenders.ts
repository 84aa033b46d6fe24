/**
 * The example app (examples/app.ts) term by term, for `npm run bench:app`.
 * Every row serves `GET /me/context` (the caller's context, secrets redacted)
 * and adds one layer of what the example runs to the row before:
 *
 *   me-bare → me-kuc → me-metrics → app-routes → app-admin → app-methods → app-public → app-errors → app-logged → app-logged-debug
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
import type { ContextStore } from '../src/index.js';
import type { Contender } from './contenders.js';
import { providerOf, type ServerFixtures } from './fixtures.js';

/** The route every row serves. */
export const APP_ROUTE = '/me/context';

/** The example's middleware, in the order createApp() mounts them (checked by name where they have one). */
const STACK = ['requestLoggerMiddleware', 'errors', 'publicRoutes', 'userContextMiddleware', 'adminRouterMiddleware', 'routes', 'allowedMethods'] as const;
/** The first of {@link STACK} that are the example's or this library's own functions, checked by name (the router's are not). */
const NAMED = 5;
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

/** The example's createApp(), with only `layers` of its middleware stack mounted. */
async function exampleApp(fixtures: ServerFixtures, layers: readonly Layer[], logLevel: 'info' | 'debug' = 'info'): Promise<Koa> {
  const [{ createApp, createLogger }, { exampleLlmRegistry }] = await Promise.all([import('../examples/app.js'), import('../examples/providers/registry.js')]);
  const { app, store } = createApp({
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
  const kept = mounted.filter((fn, i) => {
    const name = (fn as { name?: string }).name ?? '';
    if (i < NAMED && name !== STACK[i]) throw new Error(`examples/app.ts middleware ${i} is "${name}", the bench expects "${STACK[i]}"`);
    return layers.includes(STACK[i]!);
  });
  mounted.splice(0, mounted.length, ...kept);
  return app;
}

const ROUTES: Layer[] = ['userContextMiddleware', 'routes'];
const ADMIN: Layer[] = [...ROUTES, 'adminRouterMiddleware'];
const METHODS: Layer[] = [...ADMIN, 'allowedMethods'];
const PUBLIC: Layer[] = [...METHODS, 'publicRoutes'];
const ERRORS: Layer[] = [...PUBLIC, 'errors'];

/** The rows from the bare route up; each adds one layer to the one before. */
export const APP_LADDER: readonly (Contender & { adds: string })[] = [
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
          provider: providerOf(0), model, mcpServerName: null, mcpServerId: null, awsRegion: null,
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
    label: 'example: userContext + @koa/router',
    adds: "the example's createApp(): its store, metrics, and @koa/router's routes() in place of the one function",
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
    id: 'app-methods',
    label: '+ router.allowedMethods()',
    adds: "@koa/router's allowedMethods() after the routes",
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-admin plus allowedMethods().',
    build: (fixtures) => exampleApp(fixtures, METHODS),
  },
  {
    id: 'app-public',
    label: '+ /metrics and /ready',
    adds: 'the routes answered before authentication (GET /metrics, GET /ready): one middleware',
    tokens: 'hs',
    path: APP_ROUTE,
    description: 'app-methods plus publicRoutes (GET /metrics, GET /ready).',
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
];

export const APP_BASELINE_ID = 'me-bare';
