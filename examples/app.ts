/**
 * The example agent server: every user configures their own provider/model
 * and queries run on that user's own LLM client, read by no-argument getters
 * deep in the call chain (examples/agent/planner.ts and executor.ts).
 *
 *   POST /configure  { provider, model, … }  → 200 { user, config }
 *   POST /query      { prompt }              → 200 { user, provider, model, answer }
 *   GET  /me/context                         → 200 the caller's context, secrets redacted
 *   GET  /ready                              → 200 / 503 readiness (no token needed)
 *   GET  /admin                              → the admin dashboard (admin token: role "admin")
 *   GET  /admin/contexts[/:uuid], DELETE /admin/contexts/:uuid
 *   GET  /metrics                            → Prometheus metrics (no token; restrict it by network)
 *
 * Every log line written while handling a request carries the user id (and
 * the provider/model the request reads), via `userLogMixin()`.
 *
 * With a RedisContextStore (createSharedStore), a request or a configure that
 * needs Redis while it is down gets 503 { error: "context_store_unavailable" }.
 */
import Router from '@koa/router';
import Koa from 'koa';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import {
  ContextStore,
  ContextStoreUnavailableError,
  RedisContextStore,
  UserContextError,
  adminRouter,
  configureUser,
  currentUserUuid,
  getUserProvider,
  getUserRuntimeContext,
  redactContext,
  requestLogger,
  userContext,
  userLogMixin,
  type AdminRouterOptions,
  type ContextPatch,
  type ContextStoreOptions,
  type KeyInput,
  type RedisContextStoreOptions,
} from '../src/index.js';
import { MismatchError, execute } from './agent/executor.js';
import { createFakeLlm } from './agent/llm.js';
import { plan } from './agent/planner.js';
import { registerContextMetrics } from '../src/metrics.js';
import { HttpError, readJson } from './body.js';

export const PROVIDERS = ['Google', 'Anthropic', 'OpenAI', 'Amazon', 'Azure', 'Friendli', 'Ollama'] as const;

const CONFIG_FIELDS: Record<string, 'string' | 'object'> = {
  provider: 'string',
  model: 'string',
  mcpServerName: 'string',
  mcpServerId: 'string',
  awsRegion: 'string',
  azureDeploymentDetails: 'object',
  friendliDetails: 'object',
  modelProviderInProfile: 'string',
  serverConfigs: 'object',
};

export interface ExampleAppOptions {
  /** HS256 secret (≥ 32 bytes). */
  secret: KeyInput;
  /** Store to use; by default one with the fake LLM factory. */
  store?: ContextStore;
  storeOptions?: ContextStoreOptions;
  /**
   * pino logger; create it with `mixin: userLogMixin(…)` (see
   * {@link createLogger}) so lines carry the user.
   * @default createLogger() at level "silent"
   */
  logger?: Logger;
  /** Options of the admin router (prefix, isAdmin, refreshInterval, …). */
  admin?: Omit<AdminRouterOptions, 'store'>;
}

export interface ExampleApp {
  app: Koa;
  store: ContextStore;
  /** Registry behind GET /metrics. */
  registry: Registry;
  logger: Logger;
}

/** A pino logger whose every line inside a user scope carries userUuid, provider and model. */
export function createLogger(options: pino.LoggerOptions = {}, destination?: pino.DestinationStream): Logger {
  const opts = { ...options, mixin: userLogMixin({ fields: ['provider', 'model'] }) };
  return destination === undefined ? pino(opts) : pino(opts, destination);
}

export function createStore(options: ContextStoreOptions = {}): ContextStore {
  return new ContextStore({ ...options, resources: { llmInstance: { create: createFakeLlm }, ...options.resources } });
}

/** A store shared with other instances through Redis, with the fake LLM factory. */
export function createSharedStore(options: RedisContextStoreOptions): RedisContextStore {
  return new RedisContextStore({ ...options, resources: { llmInstance: { create: createFakeLlm }, ...options.resources } });
}

/** Validates a /configure body into a patch, or throws a 400. */
export function parseConfiguration(body: Record<string, unknown>): ContextPatch {
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const kind = CONFIG_FIELDS[key];
    if (kind === undefined) {
      throw new HttpError(400, 'invalid_configuration', `Unknown field "${key}"; allowed: ${Object.keys(CONFIG_FIELDS).join(', ')}.`);
    }
    const ok = value === null || (kind === 'string' ? typeof value === 'string' && value.length > 0 && value.length <= 200
      : typeof value === 'object' && !Array.isArray(value));
    if (!ok) {
      throw new HttpError(400, 'invalid_configuration', `"${key}" must be ${kind === 'string' ? 'a non-empty string of at most 200 characters' : 'an object'} or null.`);
    }
    patch[key] = value;
  }
  if (typeof patch['provider'] === 'string' && !(PROVIDERS as readonly string[]).includes(patch['provider'])) {
    throw new HttpError(400, 'invalid_configuration', `Unknown provider "${patch['provider']}"; use one of ${PROVIDERS.join(', ')}.`);
  }
  if (Object.keys(patch).length === 0) {
    throw new HttpError(400, 'invalid_configuration', 'Send at least one field, e.g. { "provider": "Google", "model": "gemini-2.5-flash" }.');
  }
  return patch as ContextPatch;
}

/** JSON errors for everything below the auth middleware; never a stack. */
function errorsWith(logger: Logger) {
  return async function errors(ctx: Koa.Context, next: Koa.Next): Promise<void> {
    try {
      await handle(ctx, next);
    } catch (err) {
      // Runs after the user scope has ended: stamp the user explicitly.
      logger.error({ err, userUuid: ctx.state['userUuid'] }, 'request failed');
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: 'Something went wrong; the error was logged.' };
    }
  };
}

async function handle(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  try {
    await next();
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404;
      ctx.body = { error: 'not_found', message: `No route for ${ctx.method} ${ctx.path}.` };
    }
  } catch (err) {
    if (err instanceof HttpError) {
      ctx.status = err.status;
      ctx.body = { error: err.error, message: err.message };
    } else if (err instanceof ContextStoreUnavailableError) {
      // Redis is down: the configuration was not applied (or applied entirely); retrying is safe.
      ctx.status = 503;
      ctx.body = { error: err.error, message: err.message };
      ctx.set('Retry-After', '5');
    } else if (err instanceof MismatchError) {
      ctx.status = 409;
      ctx.body = { error: 'configuration_mismatch', message: err.message };
    } else if (err instanceof UserContextError) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_configuration', message: err.message };
    } else {
      throw err;
    }
  }
}

export function createApp(options: ExampleAppOptions): ExampleApp {
  const store = options.store ?? createStore(options.storeOptions);
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const app = new Koa();
  app.silent = process.env['NODE_ENV'] === 'test';
  const router = new Router();

  router.post('/configure', async (ctx) => {
    const patch = parseConfiguration(await readJson(ctx));
    logger.info({ fields: Object.keys(patch) }, 'configuring');
    const context = await configureUser(patch);
    logger.info({ version: context.version }, 'configured');
    ctx.body = { user: currentUserUuid(), config: redactContext(context) };
  });

  router.post('/query', async (ctx) => {
    const body = await readJson(ctx);
    const prompt = body['prompt'];
    if (typeof prompt !== 'string' || prompt.trim() === '' || prompt.length > 10_000) {
      throw new HttpError(400, 'invalid_prompt', '"prompt" must be a non-empty string of at most 10 000 characters.');
    }
    if (getUserProvider() === null) {
      throw new HttpError(409, 'not_configured', 'Choose a provider and model first: POST /configure { "provider", "model" }.');
    }
    logger.info({ words: prompt.split(/\s+/).length }, 'planning');
    const steps = await plan(prompt);
    logger.info({ steps: steps.steps.length, planned: `${steps.provider}/${steps.model}` }, 'plan ready');
    const result = await execute(prompt, steps);
    logger.info({ ran: `${result.provider}/${result.model}` }, 'answered');
    ctx.body = { user: currentUserUuid(), provider: result.provider, model: result.model, answer: result.answer };
  });

  router.get('/me/context', (ctx) => {
    ctx.body = redactContext(getUserRuntimeContext());
  });

  const admin = adminRouter({ ...options.admin, store });
  const auth = userContext({ store, secret: options.secret, algorithms: ['HS256'], passthrough: admin.isPage });
  const registry = new Registry();
  registerContextMetrics(store, { registry, middleware: auth });

  // Order matters: the access log and the JSON error handler wrap everything;
  // /metrics is answered before authentication (scrapers carry no JWT); the
  // admin router comes after userContext(), which lets only its page through
  // without a token.
  app.use(requestLogger({ logger, ignore: (ctx) => ctx.path === '/metrics' }));
  app.use(errorsWith(logger));
  app.use(async function metricsRoute(ctx, next) {
    if (ctx.path !== '/metrics') return next();
    if (ctx.method !== 'GET') {
      ctx.status = 405;
      ctx.set('Allow', 'GET');
      ctx.body = { error: 'method_not_allowed', message: 'Use GET /metrics.' };
      return;
    }
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  app.use(async function readiness(ctx, next) {
    if (ctx.path !== '/ready' || ctx.method !== 'GET') return next();
    const state = store instanceof RedisContextStore ? store.readiness() : { ready: !store.closed };
    ctx.status = state.ready ? 200 : 503;
    ctx.body = state;
  });
  app.use(auth);
  app.use(admin);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, store, registry, logger };
}
