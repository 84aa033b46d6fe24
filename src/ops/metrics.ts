/**
 * Prometheus metrics of a context store, with prom-client. Everything is fed
 * by the store's {@link ContextEvents} (counters) or read at scrape time
 * (gauges); the core never imports prom-client. Import this module from
 * `koa-user-context/metrics`.
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerContextMetrics } from 'koa-user-context/metrics';
 * const registry = new Registry();
 * registerContextMetrics(store, { registry, middleware: auth });
 * router.get('/metrics', async (ctx) => { ctx.type = registry.contentType; ctx.body = await registry.metrics(); });
 * ```
 *
 * @module
 */
import { Counter, Gauge, Registry, register as globalRegistry } from 'prom-client';
import { RESOURCE_NAMES } from '../context/fields.js';
import { authErrorCodes } from '../errors.js';
import { CONTEXT_EVICTION_REASONS } from '../store/events.js';
import type { UserContextMiddleware } from '../auth/middleware.js';
import type { ContextStore } from '../store/store.js';

/** Options of {@link registerContextMetrics}. */
export interface ContextMetricsOptions {
  /**
   * Registry the metrics are registered in.
   * @default prom-client's global `register`
   */
  registry?: Registry;
  /**
   * Prefix of every metric name.
   * @default 'koa_user_context_'
   */
  prefix?: string;
  /**
   * Middleware(s) whose verified-token cache size is reported as
   * `<prefix>token_cache_size`.
   * @default undefined (the gauge is not registered)
   */
  middleware?: UserContextMiddleware | readonly UserContextMiddleware[];
}

/** Handle returned by {@link registerContextMetrics}. */
export interface ContextMetrics {
  readonly registry: Registry;
  /** Names of the metrics registered. */
  readonly names: readonly string[];
  /** Stops listening to the store and removes the metrics from the registry. */
  unregister(): void;
}

/** Helpers whose missing-context series start at 0 (others appear when they first fail). */
const MISSING_FNS = [
  'getUserProvider', 'getUserModel', 'getUserLlmInstance', 'getUserMcpClient', 'getUserRuntimeContext',
  'configureUser', 'bindToCurrentUser',
];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Registers the store's metrics:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `active_contexts` | gauge | |
 * | `requests_in_flight` | gauge (user scopes open: requests and `runAsUser` calls) | |
 * | `context_loads_total` | counter | `source` (`created`, `shared`) |
 * | `evictions_total` | counter | `reason` (`expired`, `evicted`, `manual`, `replaced`, `inactive`, `closed`, `unsaved`) |
 * | `token_cache_hits_total`, `token_cache_misses_total` | counters | |
 * | `tokens_rejected_total` | counter | `code` (the JSON `error`, e.g. `token_expired`) |
 * | `store_unavailable_total` | counter (503 `context_store_unavailable`) | |
 * | `writes_failed_total` | counter (unawaited legacy writes that failed) | |
 * | `context_missing_total` | counter | `function` |
 * | `resource_disposals_total` | counter | `resource`, `outcome` (`ok`, `error`) |
 * | `token_cache_size` | gauge (with `middleware`) | |
 *
 * Every name starts with `prefix`. Known label values start at 0, so each
 * series exists from the first scrape.
 */
export function registerContextMetrics(store: ContextStore, options: ContextMetricsOptions = {}): ContextMetrics {
  if (store === null || typeof store !== 'object' || typeof store.events?.on !== 'function') {
    throw new TypeError('registerContextMetrics(store): store must be a ContextStore');
  }
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const registry = options.registry ?? globalRegistry;
  if (typeof registry.registerMetric !== 'function') throw new TypeError('options.registry must be a prom-client Registry');
  const prefix = options.prefix ?? 'koa_user_context_';
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME.test(prefix))) {
    throw new TypeError(`options.prefix must match ${METRIC_NAME} (letters, digits, _ and :), got ${JSON.stringify(prefix)}`);
  }
  const middlewares = options.middleware === undefined ? []
    : Array.isArray(options.middleware) ? [...options.middleware] : [options.middleware as UserContextMiddleware];
  for (const m of middlewares) {
    if (typeof m !== 'function' || typeof m.tokenCacheSize !== 'number') {
      throw new TypeError('options.middleware must be the function returned by userContext() (or an array of them)');
    }
  }

  // Built in a staging registry, then moved together once none of the names is taken.
  const staging = new Registry();
  const registers = [staging];

  new Gauge({
    name: `${prefix}active_contexts`,
    help: 'User contexts held by the store.',
    registers,
    collect() {
      this.set(store.size);
    },
  });
  new Gauge({
    name: `${prefix}requests_in_flight`,
    help: 'User scopes open now: requests that passed the middleware, runAsUser and bindToCurrentUser calls.',
    registers,
    collect() {
      this.set(store.scopesInFlight);
    },
  });
  const loads = new Counter({
    name: `${prefix}context_loads_total`,
    help: 'User contexts brought into the store (source: created, or loaded from a shared store).',
    labelNames: ['source'] as const,
    registers,
  });
  const evictions = new Counter({
    name: `${prefix}evictions_total`,
    help: 'Contexts that left the store, and configurations whose live resources a new configuration replaced (reason="replaced").',
    labelNames: ['reason'] as const,
    registers,
  });
  // A hit or a miss happens on every request: counted in a number, added to the counter when it is read.
  let hitsPending = 0;
  let missesPending = 0;
  new Counter({
    name: `${prefix}token_cache_hits_total`,
    help: 'Tokens answered from the verified-token cache.',
    registers,
    collect() {
      this.inc(hitsPending);
      hitsPending = 0;
    },
  });
  new Counter({
    name: `${prefix}token_cache_misses_total`,
    help: 'Tokens not in the verified-token cache (verified with jsonwebtoken).',
    registers,
    collect() {
      this.inc(missesPending);
      missesPending = 0;
    },
  });
  const rejected = new Counter({
    name: `${prefix}tokens_rejected_total`,
    help: 'Requests whose credentials the middleware refused, by the error code sent to the client.',
    labelNames: ['code'] as const,
    registers,
  });
  const unavailable = new Counter({
    name: `${prefix}store_unavailable_total`,
    help: 'Requests answered 503 context_store_unavailable because the shared store (Redis) could not serve the context.',
    registers,
  });
  const writesFailed = new Counter({
    name: `${prefix}writes_failed_total`,
    help: 'Writes nobody could await (legacy global setters) that failed; nothing was applied.',
    registers,
  });
  const missing = new Counter({
    name: `${prefix}context_missing_total`,
    help: 'Helpers called outside any user scope in multi-user mode (UserContextMissingError).',
    labelNames: ['function'] as const,
    registers,
  });
  const disposals = new Counter({
    name: `${prefix}resource_disposals_total`,
    help: 'Live resources (LLM clients, MCP clients) disposed, by outcome.',
    labelNames: ['resource', 'outcome'] as const,
    registers,
  });
  if (middlewares.length > 0) {
    new Gauge({
      name: `${prefix}token_cache_size`,
      help: 'Verified tokens cached by the middleware.',
      registers,
      collect() {
        this.set(middlewares.reduce((sum, m) => sum + m.tokenCacheSize, 0));
      },
    });
  }

  const metrics = staging.getMetricsAsArray();
  const names = metrics.map((m) => m.name);
  const taken = names.filter((n) => registry.getSingleMetric(n) !== undefined);
  if (taken.length > 0) {
    throw new TypeError(
      `The registry already holds ${taken.join(', ')}: call unregister() on the previous metrics, or pass another options.prefix or options.registry`,
    );
  }
  for (const name of names) registry.registerMetric(staging.getSingleMetric(name)!);

  loads.inc({ source: 'created' }, 0);
  for (const reason of CONTEXT_EVICTION_REASONS) evictions.inc({ reason }, 0);
  for (const code of authErrorCodes()) rejected.inc({ code }, 0);
  unavailable.inc(0);
  writesFailed.inc(0);
  for (const fn of MISSING_FNS) missing.inc({ function: fn }, 0);
  for (const resource of RESOURCE_NAMES) for (const outcome of ['ok', 'error']) disposals.inc({ resource, outcome }, 0);

  const events = store.events;
  const off = [
    events.on('contextLoaded', (e) => loads.inc({ source: e.source })),
    events.on('evicted', (e) => evictions.inc({ reason: e.reason })),
    events.on('tokenCacheHit', () => void hitsPending++),
    events.on('tokenCacheMiss', () => void missesPending++),
    events.on('tokenRejected', (e) => rejected.inc({ code: e.error })),
    events.on('storeUnavailable', () => unavailable.inc()),
    events.on('writeFailed', () => writesFailed.inc()),
    events.on('contextMissing', (e) => missing.inc({ function: e.fn })),
    events.on('resourceDisposed', (e) => disposals.inc({ resource: e.resource, outcome: e.ok ? 'ok' : 'error' })),
  ];

  let registered = true;
  return Object.freeze({
    registry,
    names: Object.freeze(names),
    unregister(): void {
      if (!registered) return;
      registered = false;
      for (const stop of off) stop();
      for (const name of names) registry.removeSingleMetric(name);
    },
  });
}
