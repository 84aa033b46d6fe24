/**
 * User-stamped logs. {@link userLogMixin} is a pino `mixin`: every line a
 * logger writes inside a user scope (a request that passed the middleware,
 * `runAsUser`, a `bindToCurrentUser` callback) carries the user id, and on
 * request the provider/model *this scope reads*, so a line written for user A
 * with user B's model would stand out. {@link requestLogger} writes one line
 * per request. Neither imports pino: any logger of the same shape works.
 *
 * ```ts
 * import pino from 'pino';
 * const logger = pino({ mixin: userLogMixin({ fields: ['provider', 'model'] }) });
 * app.use(requestLogger({ logger }));
 * app.use(userContext({ … }));
 * // anywhere below: logger.info('planning') → {"userUuid":"…","provider":"Google","model":"gemini-2.5-flash",…}
 * ```
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { Context, Next } from 'koa';
import { peekGeneration } from '../api/access.js';
import { redactField } from '../context/redact.js';
import { als } from '../store/als.js';
import { rejectUnknownOptions } from '../options.js';
import type { ConfigField } from '../context/types.js';

/** Options of {@link userLogMixin}. */
export interface UserLogMixinOptions {
  /**
   * Configuration fields added to each line, read from the scope's own
   * snapshot (what the code logging actually uses).
   * @default [] (only the user id)
   */
  fields?: readonly ConfigField[];
  /**
   * Key of the user id in the log line.
   * @default 'userUuid'
   */
  userKey?: string;
  /**
   * Also add `contextVersion`, the version of the configuration the scope reads.
   * @default false
   */
  version?: boolean;
}

const USER_LOG_MIXIN_OPTIONS = ['fields', 'userKey', 'version'] satisfies (keyof UserLogMixinOptions)[];

/**
 * Returns a pino `mixin` function. Outside any user scope it adds nothing.
 * It returns a new object on every call (pino merges the line into it).
 */
export function userLogMixin(options: UserLogMixinOptions = {}): () => Record<string, unknown> {
  if (options === null || typeof options !== 'object') throw new TypeError('userLogMixin(options): options must be an object');
  rejectUnknownOptions(options, USER_LOG_MIXIN_OPTIONS, 'userLogMixin()');
  const { fields = [], userKey = 'userUuid', version = false } = options;
  if (!Array.isArray(fields) || fields.some((f) => typeof f !== 'string' || f === '')) {
    throw new TypeError("options.fields must be an array of field names, e.g. ['provider', 'model']");
  }
  if (typeof userKey !== 'string' || userKey === '') throw new TypeError('options.userKey must be a non-empty string');
  const list = [...fields] as ConfigField[];
  return function userLogMixinFn(): Record<string, unknown> {
    const scope = als.getStore();
    if (scope === undefined) return {};
    const out: Record<string, unknown> = { [userKey]: scope.userUuid };
    const gen = peekGeneration(false) ?? scope.gen;
    const config = gen.config as unknown as Record<string, unknown>;
    for (const field of list) out[field] = redactField(field, config[field] ?? null);
    if (version) out['contextVersion'] = gen.version;
    return out;
  };
}

/** The part of a logger (pino, or alike) {@link requestLogger} uses. */
export interface RequestLogSink {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  /** Needed when {@link RequestLoggerOptions.level} can answer `'debug'`. */
  debug?(obj: object, msg: string): void;
  /** pino's: a line at a level the logger drops is not even built. */
  isLevelEnabled?(level: string): boolean;
}

/** Every level a request's line can have, once: the type, the check and the messages derive from it. */
const REQUEST_LOG_LEVEL_LIST = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/** A level {@link RequestLoggerOptions.level} can give a request's line; `'silent'` writes none. */
export type RequestLogLevel = (typeof REQUEST_LOG_LEVEL_LIST)[number];

const REQUEST_LOG_LEVELS: ReadonlySet<string> = new Set(REQUEST_LOG_LEVEL_LIST);
const LEVELS_TEXT = REQUEST_LOG_LEVEL_LIST.map((l) => `'${l}'`).join(' | ');

/** The default level of a request's line: `info` below 400, `warn` for 4xx, `error` for 5xx. */
export function statusLogLevel(status: number): RequestLogLevel {
  return status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
}

/** Options of {@link requestLogger}. */
export interface RequestLoggerOptions {
  /** Logger to write to (e.g. a pino logger). Required. */
  logger: RequestLogSink;
  /**
   * Message of the line.
   * @default 'request completed'
   */
  message?: string;
  /**
   * Requests not to log (health checks, metrics scrapes).
   * @default undefined (every request is logged)
   */
  ignore?: (ctx: Context) => boolean;
  /**
   * The level of a request's line, from its status and duration (ms);
   * `'silent'` writes none. For example failures and slow requests only, the
   * rest at `debug` (an ingress or load balancer keeping the access log):
   * `(status, ms) => status >= 400 || ms >= 1000 ? statusLogLevel(status) : 'debug'`.
   * A line at a level the logger drops (pino's `isLevelEnabled`) is not built.
   * @default statusLogLevel: info below 400, warn for 4xx, error for 5xx
   */
  level?: (status: number, ms: number, ctx: Context) => RequestLogLevel;
}

const REQUEST_LOGGER_OPTIONS = ['logger', 'message', 'ignore', 'level'] satisfies (keyof RequestLoggerOptions)[];

/**
 * Koa middleware writing one line per request: method, path, status,
 * duration and the user (from `ctx.state.userUuid`, so a line for a request
 * refused by the middleware has none). Level `info` below 400, `warn` for
 * 4xx, `error` for 5xx, or what `options.level` says. Mount it *before*
 * `userContext()` to log refused requests too.
 */
export function requestLogger(options: RequestLoggerOptions): (ctx: Context, next: Next) => Promise<void> {
  if (options === null || typeof options !== 'object') throw new TypeError('requestLogger(options): options is required');
  rejectUnknownOptions(options, REQUEST_LOGGER_OPTIONS, 'requestLogger()');
  const { logger, message = 'request completed', ignore, level = statusLogLevel } = options;
  if (logger === null || typeof logger !== 'object' || typeof logger.info !== 'function' || typeof logger.warn !== 'function' || typeof logger.error !== 'function') {
    throw new TypeError('options.logger must be a logger with info/warn/error methods (e.g. a pino logger)');
  }
  if (typeof message !== 'string') throw new TypeError('options.message must be a string');
  if (ignore !== undefined && typeof ignore !== 'function') throw new TypeError('options.ignore must be a function (ctx) => boolean');
  if (typeof level !== 'function') throw new TypeError(`options.level must be a function (status, ms, ctx) => ${LEVELS_TEXT}`);
  if (options.level !== undefined && typeof logger.debug !== 'function') {
    throw new TypeError('options.logger must have a debug method when options.level is given (pino loggers do)');
  }
  const enabled = typeof logger.isLevelEnabled === 'function' ? logger.isLevelEnabled.bind(logger) : undefined;

  /** The line of a request that ended (`failed`: its chain threw, so Koa answers 500). */
  function write(ctx: Context, start: number, failed: boolean): void {
    const status = failed ? 500 : ctx.status;
    const ms = performance.now() - start;
    const at = level(status, ms, ctx);
    if (!REQUEST_LOG_LEVELS.has(at)) {
      throw new TypeError(`options.level returned ${JSON.stringify(at)}; return one of ${LEVELS_TEXT}`);
    }
    if (at === 'silent' || (enabled !== undefined && !enabled(at))) return;
    const line: Record<string, unknown> = { method: ctx.method, path: ctx.path, status, ms };
    const user: unknown = ctx.state['userUuid'];
    if (typeof user === 'string') line['userUuid'] = user;
    logger[at]!(line, message);
  }

  // No async frame: one reaction on the rest of the chain, as userContext() itself does (every request passes here).
  return function requestLoggerMiddleware(ctx: Context, next: Next): Promise<void> {
    if (ignore?.(ctx)) return next();
    const start = performance.now();
    return next().then(
      () => write(ctx, start, false),
      (error: unknown) => {
        write(ctx, start, true);
        throw error;
      },
    );
  };
}
