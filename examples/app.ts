/**
 * The example agent server: every user configures their own provider, model,
 * API key and MCP server, and queries run on that user's own LLM client (a
 * real AI SDK client built by the koa-user-context/ai registry) and MCP
 * client, read by no-argument getters deep in the call chain
 * (examples/agent/planner.ts and executor.ts).
 *
 *   POST /configure     { provider, model, llmCredentials: { apiKey }, mcpServerName, … }
 *                         → 200 { user, config } (the key redacted)
 *                         → 400 { error: "missing_credentials" | "model_not_allowed" | "provider_not_allowed"
 *                                 | "base_url_not_allowed" | "invalid_provider_settings" }
 *   POST /query         { prompt, sessionId?, profile?, stream? }
 *                         → 200 { user, provider, model, answer, [mcpServer, tools], [sessionId], [profileTag] }
 *                         → with "stream": true or "Accept: text/event-stream": Server-Sent Events
 *                           (meta, token…, done); a client that disconnects aborts the LLM call
 *   POST /sessions                                      → 201 { id, createdAt, config }
 *   GET  /sessions/:id                                  → 200 { id, createdAt, config, queries, modelsUsed, profileTagsUsed }
 *   POST /agent         { prompt, stream?, maxSteps? } → the agent loop: the user's LLM calls the user's MCP
 *                         tools (examples/agent/loop.ts); JSON names the tools called, SSE streams tool events
 *   GET  /mcp/tools                                     → 200 { server, tools: [{ name, description }], servers: [{ server, tools, error? }] }
 *                         (`servers`: every MCP server of the user, in order, one that cannot list its tools now with
 *                         `error: { code, message }`; `server` and `tools`: the first one's; 502/503 when none can)
 *   GET  /me/context                                    → 200 the caller's context, secrets redacted
 *   GET  /ready                                         → 200 / 503 readiness (no token needed)
 *   GET  /admin                                         → the admin dashboard (admin token: role "admin")
 *   GET  /admin/contexts[/:uuid], DELETE /admin/contexts/:uuid
 *   GET  /metrics                                       → Prometheus metrics (no token; restrict it by network)
 *
 * Every log line written while handling a request carries the user id (and
 * the provider/model the request reads), via `userLogMixin()`.
 *
 * With a RedisContextStore (createSharedStore), a request or a configure that
 * needs Redis while it is down gets 503 { error: "context_store_unavailable" }.
 *
 * A user's MCP server that cannot be used answers 502 { error: "mcp_unavailable" }
 * (connect failed) or { error: "mcp_connection_lost" } (cut mid-call), and 503
 * { error: "mcp_backoff" | "mcp_busy" } with Retry-After (failing fast after a
 * failed connect / every connection of the instance in use).
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import Koa from 'koa';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import {
  ClientDisconnectedError,
  ContextStore,
  adminRouter,
  configureUser,
  currentProfileTag,
  currentUserUuid,
  getRequestSignal,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  getUserRuntimeContext,
  redactContext,
  requestLogger,
  runWithProfile,
  statusLogLevel,
  userContext,
  userLogMixin,
  UserContextError,
  type AdminRouterOptions,
  type ContextPatch,
  type ContextStoreOptions,
  type KeyInput,
  type Profile,
  type RequestLogLevel,
  type UserConfig,
  type UserRuntimeContext,
  DEFAULT_DEPENDS_ON,
} from '../src/index.js';
import { RedisContextStore, type RedisContextStoreOptions } from '../src/redis.js';
import {
  createMcpClientFactory,
  getUserMcpConnection,
  getUserMcpConnections,
  type McpServerDefinition,
} from '../src/mcp.js';
import type { LlmRegistry } from '../src/ai.js';
import { MismatchError, execute } from './agent/executor.js';
import { registerAgentLoop } from './agent/loop.js';
import { parseConfiguration } from './configure.js';
export { PROVIDERS, parseConfiguration } from './configure.js';
import { errorsWith } from './http-errors.js';
import { sseFrame, sseSender } from './sse.js';
import { agentLlm, type AgentLlm } from './agent/llm.js';
import { plan } from './agent/planner.js';
import { registerContextMetrics } from '../src/metrics.js';
import { HttpError, readJson } from './body.js';
import { SessionManager, type Session } from './sessions.js';
import { Router } from './router.js';

/** Profiles a query can name with `"profile": "<tag>"`. */
export const DEFAULT_PROFILES: ReadonlyMap<string, Profile> = new Map<string, Profile>([
  ['@fast', { provider: 'Anthropic', model: 'claude-3-5-haiku' }],
  ['@smart', { provider: 'Google', model: 'gemini-2.5-pro' }],
  ['@crm', { mcpServerName: 'crm' }],
  ['@warehouse', { mcpServerName: 'warehouse' }],
]);

export interface ExampleAppOptions {
  /** HS256 secret (≥ 32 bytes). */
  secret: KeyInput;
  /**
   * The LLM registry (koa-user-context/ai) the default store builds each
   * user's client with, and /configure validates against. Required unless
   * `store` is given.
   * @default undefined
   */
  llms?: LlmRegistry;
  /** Store to use; by default one whose LLM clients come from `llms` (and MCP clients when `mcpServers` is given). */
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
  /**
   * MCP servers a user may pick with `mcpServerName`, by name → Streamable
   * HTTP URL or registry entry (`{ url }`, a stdio `{ command, args, env }`,
   * or a function of the user giving one). Users pick names, never URLs or
   * commands: the server only connects to, or runs, what the operator allows.
   * @default none (MCP disabled)
   */
  mcpServers?: ReadonlyMap<string, McpServerDefinition>;
  /**
   * Profiles a query can name.
   * @default DEFAULT_PROFILES
   */
  profiles?: ReadonlyMap<string, Profile>;
}

export interface ExampleApp {
  app: Koa;
  store: ContextStore;
  /** Registry behind GET /metrics. */
  registry: Registry;
  logger: Logger;
  /** Sessions of the example app (POST /sessions). */
  sessions: SessionManager;
  /** The routes below userContext() (examples/router.ts); more can be added. */
  router: Router;
}

/** A pino logger whose every line inside a user scope carries userUuid, provider and model. */
export function createLogger(options: pino.LoggerOptions = {}, destination?: pino.DestinationStream): Logger {
  const opts = { ...options, mixin: userLogMixin({ fields: ['provider', 'model'] }) };
  return destination === undefined ? pino(opts) : pino(opts, destination);
}

/** The example's resources: LLM clients from the registry, and MCP clients for the servers in `mcpServers`. */
export function exampleResources(mcpServers?: ReadonlyMap<string, McpServerDefinition>, llms?: LlmRegistry): NonNullable<ContextStoreOptions['resources']> {
  const mcpClient = mcpServers === undefined ? undefined : createMcpClientFactory({ servers: Object.fromEntries(mcpServers) });
  return { ...(llms ? { llmInstance: llms.resource() } : {}), ...(mcpClient ? { mcpClient } : {}) };
}

export function createStore(options: ContextStoreOptions = {}, mcpServers?: ReadonlyMap<string, McpServerDefinition>, llms?: LlmRegistry): ContextStore {
  return new ContextStore({ ...options, resources: { ...exampleResources(mcpServers, llms), ...options.resources } });
}

/** A store shared with other instances through Redis, with the example's resources. */
export function createSharedStore(options: RedisContextStoreOptions, mcpServers?: ReadonlyMap<string, McpServerDefinition>, llms?: LlmRegistry): RedisContextStore {
  return new RedisContextStore({ ...options, resources: { ...exampleResources(mcpServers, llms), ...options.resources } });
}

interface QueryRequest {
  prompt: string;
  session: Session | undefined;
  profile: { tag: string; fields: Profile } | undefined;
  stream: boolean;
}

export function createApp(options: ExampleAppOptions): ExampleApp {
  if (options.store === undefined && options.llms === undefined) {
    throw new TypeError('createApp needs options.llms (an LLM registry from koa-user-context/ai) or options.store');
  }
  const llms = options.llms;
  const store = options.store ?? createStore(options.storeOptions, options.mcpServers, llms);
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const profiles = options.profiles ?? DEFAULT_PROFILES;
  const mcpServers = options.mcpServers;
  const sessions = new SessionManager();
  const app = new Koa();
  app.silent = process.env['NODE_ENV'] === 'test';
  const router = new Router();

  function parseQuery(ctx: Koa.Context, body: Record<string, unknown>): QueryRequest {
    const { prompt, sessionId, profile, stream } = body;
    if (typeof prompt !== 'string' || prompt.trim() === '' || prompt.length > 10_000) {
      throw new HttpError(400, 'invalid_prompt', '"prompt" must be a non-empty string of at most 10 000 characters.');
    }
    let session: Session | undefined;
    if (sessionId !== undefined) {
      if (typeof sessionId !== 'string') throw new HttpError(400, 'invalid_session_id', '"sessionId" must be a string from POST /sessions.');
      session = sessions.get(sessionId, currentUserUuid()!);
      if (session === undefined) throw new HttpError(404, 'session_not_found', `No session "${sessionId.slice(0, 64)}" for this user; create one with POST /sessions.`);
    }
    let chosen: QueryRequest['profile'];
    if (profile !== undefined) {
      const fields = typeof profile === 'string' ? profiles.get(profile) : undefined;
      if (fields === undefined) {
        throw new HttpError(400, 'unknown_profile', `"profile" must be one of ${[...profiles.keys()].join(', ')}.`);
      }
      chosen = { tag: profile as string, fields };
    }
    if (stream !== undefined && typeof stream !== 'boolean') throw new HttpError(400, 'invalid_stream', '"stream" must be true or false.');
    const wantsSse = stream ?? ctx.accepts('application/json', 'text/event-stream') === 'text/event-stream';
    return { prompt, session, profile: chosen, stream: wantsSse };
  }

  /** Runs `fn` on the session's captured configuration, then the profile on top: one query only. */
  function onQueryConfiguration<R>(query: QueryRequest, fn: () => Promise<R>): Promise<R> {
    const withProfile = query.profile === undefined ? fn : () => runWithProfile({ tag: query.profile!.tag, ...query.profile!.fields }, fn);
    return query.session === undefined ? withProfile() : runWithProfile(query.session.profile, withProfile);
  }

  /** The MCP server and tool names of the configuration this scope reads, if any. */
  async function mcpInfo(): Promise<{ mcpServer: string; tools: string[] } | undefined> {
    const connection = await getUserMcpConnection();
    if (connection === null) return undefined;
    const tools = await connection.listTools();
    return { mcpServer: connection.serverName, tools: tools.map((t) => t.name) };
  }

  async function requireConfigured(): Promise<AgentLlm> {
    if (getUserProvider() === null) {
      throw new HttpError(409, 'not_configured', 'Choose a provider and model first: POST /configure { "provider", "model" }.');
    }
    // Builds (once per configuration) or throws the registry's 400 (missing_credentials, …).
    const llm = agentLlm(await getUserLlmInstance());
    if (llm === null) throw new MismatchError('no LLM client for this user; POST /configure first');
    return llm;
  }

  /**
   * Binds a key sent without a provider to the provider it is configured with,
   * so a profile that switches provider never sends it elsewhere.
   */
  function bindCredentials(patch: ContextPatch): ContextPatch {
    const credentials = patch.llmCredentials;
    if (credentials === null || credentials === undefined || credentials.provider !== undefined) return patch;
    const provider = patch.provider === undefined ? getUserProvider() : patch.provider;
    return provider === null ? patch : { ...patch, llmCredentials: { ...credentials, provider } };
  }

  /** Checks the configuration a patch would produce, before anything is stored. */
  function validateLlm(patch: ContextPatch): void {
    if (llms === undefined) return;
    const touches = Object.keys(patch).some((k) => (DEFAULT_DEPENDS_ON.llmInstance as readonly string[]).includes(k));
    if (touches) llms.validate({ ...getUserRuntimeContext(), ...patch } as UserConfig);
  }

  router.post('/configure', async (ctx) => {
    const patch = bindCredentials(parseConfiguration(await readJson(ctx)));
    logger.info({ fields: Object.keys(patch) }, 'configuring');
    for (const name of [patch.mcpServerName, ...(patch.mcpServerNames ?? [])]) {
      if (mcpServers !== undefined && typeof name === 'string' && !mcpServers.has(name)) {
        throw new HttpError(400, 'unknown_mcp_server', `Unknown MCP server "${name}"; use one of ${[...mcpServers.keys()].join(', ')}.`);
      }
    }
    validateLlm(patch);
    const context = await configureUser(patch);
    logger.info({ version: context.version }, 'configured');
    ctx.body = { user: currentUserUuid(), config: redactContext(context) };
  });

  router.post('/query', async (ctx) => {
    const query = parseQuery(ctx, await readJson(ctx));
    if (!query.stream) {
      ctx.body = await onQueryConfiguration(query, async () => {
        await requireConfigured();
        logger.info({ words: query.prompt.split(/\s+/).length }, 'planning');
        const steps = await plan(query.prompt);
        logger.info({ steps: steps.steps.length, planned: `${steps.provider}/${steps.model}` }, 'plan ready');
        const result = await execute(query.prompt, steps);
        logger.info({ ran: `${result.provider}/${result.model}` }, 'answered');
        const mcp = await mcpInfo();
        const profileTag = currentProfileTag();
        // Recorded from the context that ran the query, never from a global.
        query.session?.record(result.provider, result.model, profileTag);
        return {
          user: currentUserUuid(),
          provider: result.provider,
          model: result.model,
          answer: result.answer,
          ...mcp,
          ...(query.session ? { sessionId: query.session.id } : {}),
          ...(profileTag !== undefined ? { profileTag } : {}),
        };
      });
      return;
    }
    await streamQuery(ctx, query);
  });

  /**
   * Server-Sent Events. The stream is produced inside the query's scope (the
   * session's and profile's overrides included), by a task that outlives this
   * handler: Koa writes the body after the handler returns, and the
   * middleware keeps the request scope until the response is done.
   */
  async function streamQuery(ctx: Koa.Context, query: QueryRequest): Promise<void> {
    const out = new PassThrough();
    let headersReady!: () => void;
    let failedEarly!: (error: unknown) => void;
    const ready = new Promise<void>((resolve, reject) => {
      headersReady = resolve;
      failedEarly = reject;
    });
    let started = false;
    const send = sseSender(out);
    const produce = onQueryConfiguration(query, async () => {
      const llm = await requireConfigured();
      const mcp = await mcpInfo();
      const profileTag = currentProfileTag();
      query.session?.record(llm.provider, llm.model, profileTag);
      started = true;
      headersReady();
      await send('meta', { user: currentUserUuid(), provider: llm.provider, model: llm.model, ...mcp, ...(profileTag !== undefined ? { profileTag } : {}) });
      // Tokens go through an emitter, as with SDKs that stream by events; the
      // listener reads the user's context when it runs.
      const tokens = new EventEmitter();
      const pending: Promise<void>[] = [];
      tokens.on('token', (text: string, index: number) => {
        pending.push(send('token', { index, text, user: currentUserUuid(), model: getUserModel() }));
      });
      let index = 0;
      const words: string[] = [];
      for await (const text of llm.stream(query.prompt, getRequestSignal())) {
        words.push(text);
        tokens.emit('token', text, index++);
        await Promise.all(pending.splice(0));
      }
      await send('done', { answer: words.join(' '), tokens: index });
      out.end();
    });
    produce.catch((error: unknown) => {
      if (!started) return failedEarly(error);
      if (getAbortReason(error)) {
        out.destroy();
        return;
      }
      out.end(sseFrame('error', { error: 'stream_failed', message: 'The answer could not be completed.' }));
      ctx.app.emit('error', error, ctx);
    });
    await ready;
    ctx.status = 200;
    ctx.type = 'text/event-stream';
    ctx.set('Cache-Control', 'no-cache, no-transform');
    ctx.set('X-Accel-Buffering', 'no');
    ctx.body = out;
  }

  router.post('/sessions', async (ctx) => {
    const context: UserRuntimeContext = getUserRuntimeContext();
    const session = sessions.create(currentUserUuid()!, context);
    ctx.status = 201;
    ctx.body = describeSession(session, context);
  });

  router.get('/sessions/:id', (ctx) => {
    const session = sessions.get(ctx.params['id'] ?? '', currentUserUuid()!);
    if (session === undefined) throw new HttpError(404, 'session_not_found', 'No such session for this user.');
    ctx.body = describeSession(session, getUserRuntimeContext());
  });

  registerAgentLoop(router);

  router.get('/mcp/tools', async (ctx) => {
    // Every server the user picked, in the order of their mcpServerNames; `server` and `tools` are the first one's.
    // A server that cannot list its tools now is shown with its error while the others answer (the agent's
    // getUserTools() leaves it out the same way); when none can, the first failure is the answer (502 / 503).
    const connections = await getUserMcpConnections();
    const settled = await Promise.allSettled(connections.map((connection) => connection.listTools()));
    const first = settled[0];
    if (first?.status === 'rejected' && settled.every((s) => s.status === 'rejected')) throw first.reason;
    const servers = connections.map((connection, i) => {
      const listed = settled[i]!;
      if (listed.status === 'fulfilled') {
        return { server: connection.serverName, tools: listed.value.map((t) => ({ name: t.name, description: t.description ?? null })) };
      }
      // Only the library's errors (a stable code, a message written for clients); anything else is a bug: a 500.
      if (!(listed.reason instanceof UserContextError)) throw listed.reason;
      return { server: connection.serverName, tools: [], error: { code: listed.reason.code, message: listed.reason.message } };
    });
    ctx.body = { server: servers[0]?.server ?? null, tools: servers[0]?.tools ?? [], servers };
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
  app.use(requestLogger({ logger, ignore: (ctx) => ctx.path === '/metrics', level: accessLogLevel }));
  app.use(errorsWith(logger));
  // Not async: every request passes here on its way to the routes.
  app.use(function publicRoutes(ctx, next) {
    if (ctx.path === '/metrics') {
      if (ctx.method !== 'GET') {
        ctx.status = 405;
        ctx.set('Allow', 'GET');
        ctx.body = { error: 'method_not_allowed', message: 'Use GET /metrics.' };
        return;
      }
      ctx.type = registry.contentType;
      return registry.metrics().then((text) => void (ctx.body = text));
    }
    if (ctx.path !== '/ready' || ctx.method !== 'GET') return next();
    const state = store instanceof RedisContextStore ? store.readiness() : { ready: !store.closed };
    ctx.status = state.ready ? 200 : 503;
    ctx.body = state;
  });
  app.use(auth);
  app.use(admin);
  app.use(router.routes());
  return { app, store, registry, logger, sessions, router };
}

/** A request slower than this is logged at info even when it succeeded. */
export const SLOW_REQUEST_MS = 1000;

/**
 * The example's access log, as production apps behind an ingress or load
 * balancer keep it (that one logs every request): failures (warn, error) and
 * slow requests (info) always; every other request at debug, so
 * `LOG_LEVEL=debug` shows a line per request. A line per request costs about
 * as much as this library's middleware (docs/benchmarks.md, "The example app").
 */
export function accessLogLevel(status: number, ms: number): RequestLogLevel {
  if (status >= 400 || ms >= SLOW_REQUEST_MS) return statusLogLevel(status);
  return 'debug';
}

function describeSession(session: Session, context: UserRuntimeContext): Record<string, unknown> {
  const config = redactContext({ ...context, ...session.profile } as UserRuntimeContext);
  const captured: Record<string, unknown> = {};
  for (const key of Object.keys(session.profile)) captured[key] = config[key];
  return {
    id: session.id,
    createdAt: session.createdAt.toISOString(),
    config: captured,
    queries: session.queries,
    modelsUsed: session.modelsUsed,
    profileTagsUsed: session.profileTagsUsed,
  };
}

function getAbortReason(error: unknown): boolean {
  return error instanceof ClientDisconnectedError || (error as { name?: unknown } | null)?.name === 'AbortError';
}
