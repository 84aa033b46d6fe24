/**
 * The usage meter: admits each LLM call against the user's limits (reserving
 * its estimated tokens and a concurrency slot), books what the call really
 * used when it ends, counts tool calls per MCP server, and answers what a
 * user has spent. The LLM registry (`createLlmRegistry({ usage })`) calls it
 * around every model call; the app's executor has no code for it.
 *
 * ```ts
 * import { createUsageMeter } from 'koa-user-context/usage';
 * const usage = createUsageMeter({ limits: { tokensPerPeriod: 200_000, requestsPerMinute: 30, concurrent: 4 } });
 * usage.setLimits(vipUserUuid, { tokensPerPeriod: 2_000_000 });
 * const llms = createLlmRegistry({ providers, usage });
 * ```
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { currentUserUuid } from '../api/helpers.js';
import { UsageLimitExceededError, UsageStoreUnavailableError, type UsageLimitName } from '../errors.js';
import { warnOnce } from '../warn.js';
import { adoptDefaultUsageMeter } from './current.js';
import { LAST_CALL, LAST_LIMITED, limitedCounters, llmCallCounters, periodStart, toUserUsage, toolCallCounters } from './fields.js';
import { MemoryUsageBackend } from './memory.js';
import type { Booking, ResolvedLimits, UsageBackend, UsageLimits, UserUsage } from './types.js';

/** What the estimate of a call's tokens is made from. */
export interface CallEstimateInput {
  /** Characters of the prompt as sent to the SDK (messages, tool results), JSON-encoded. */
  readonly promptChars: number;
  /** The call's `maxOutputTokens`, when it sets one. */
  readonly maxOutputTokens: number | undefined;
}

/** Options of {@link createUsageMeter}. */
export interface UsageMeterOptions {
  /**
   * Where usage and reservations live: this process, or Redis for several
   * instances (`new RedisUsageBackend({ redis })`).
   * @default new MemoryUsageBackend()
   */
  backend?: UsageBackend;
  /**
   * The limits of every user (the operator's defaults).
   * @default {} (no limit: usage is recorded only)
   */
  limits?: UsageLimits;
  /**
   * The operator's per-user limits, merged over `limits` (from your user
   * database, a plan…); called on every call, so keep it fast. Overrides
   * set with {@link UsageMeter.setLimits} win over it.
   * @default undefined
   */
  limitsFor?: (userUuid: string) => UsageLimits | undefined;
  /**
   * Tokens reserved before a call, settled with the real usage after it.
   * @default ceil(promptChars / 4) + (maxOutputTokens ?? 1024)
   */
  estimateTokens?: (call: CallEstimateInput) => number;
  /**
   * When the backend (Redis) fails or does not answer within
   * `storeTimeoutMs`: `'refuse'` fails closed (the call is not sent:
   * `UsageStoreUnavailableError`, 503); `'allow'` fails open (the call goes
   * out unchecked). Either way its usage is booked once the store is back.
   * @default 'refuse'
   */
  onStoreError?: 'refuse' | 'allow';
  /**
   * How long an admission may wait for the backend, ms.
   * @default 1000
   */
  storeTimeoutMs?: number;
  /**
   * How long a call may hold its concurrency slot, ms (a stream nobody
   * reads, an instance that died mid-call).
   * @default 600_000
   */
  leaseMs?: number;
  /**
   * Bookings kept for a backend that is down, replayed (once each) when it is
   * back; beyond this the oldest are dropped with a warning.
   * @default 10_000
   */
  maxPending?: number;
}

/** What the meter tells its listeners (metrics); no user id, no content. */
export type UsageEvent =
  | { readonly type: 'call'; readonly provider: string; readonly model: string; readonly outcome: 'ok' | 'error' | 'aborted'; readonly inputTokens: number; readonly outputTokens: number; readonly latencyMs: number }
  | { readonly type: 'limited'; readonly limit: UsageLimitName }
  | { readonly type: 'tool'; readonly server: string; readonly ok: boolean }
  | { readonly type: 'storeError'; readonly phase: 'admit' | 'book' };

/** The SDK's usage report of one call (AI SDK `LanguageModelV3Usage` / `V4Usage`). */
export interface ReportedUsage {
  readonly inputTokens: { readonly total: number | undefined };
  readonly outputTokens: { readonly total: number | undefined };
}

/** One admitted call; end it exactly once (later calls are ignored). */
export interface UsageTicket {
  /** The call answered; `usage` is the SDK's report. */
  finish(usage: ReportedUsage | undefined): void;
  /**
   * The call failed (`error` gives the code: `http_<status>`, `aborted`,
   * `timeout`, `error`); `usage` when the provider still reported some (a
   * stream that failed after its usage part).
   */
  fail(error: unknown, usage?: ReportedUsage): void;
}

/** Who a call is for: the user, and the provider and model it goes to. */
export interface CallTarget {
  readonly userUuid: string;
  readonly provider: string;
  readonly model: string;
}

const OPTION_KEYS = new Set(['backend', 'limits', 'limitsFor', 'estimateTokens', 'onStoreError', 'storeTimeoutMs', 'leaseMs', 'maxPending']);
const LIMIT_KEYS = new Set(['tokensPerPeriod', 'periodMs', 'requestsPerMinute', 'concurrent', 'toolCallsPerLoop']);
const DAY = 86_400_000;

/** Checks a limits object; throws a TypeError naming the bad key. */
export function checkLimits(limits: UsageLimits, at: string): UsageLimits {
  if (limits === null || typeof limits !== 'object') throw new TypeError(`${at} must be an object of limits`);
  for (const [key, value] of Object.entries(limits)) {
    if (!LIMIT_KEYS.has(key)) throw new TypeError(`${at}: unknown limit "${key}"; known: ${[...LIMIT_KEYS].join(', ')}`);
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < (key === 'periodMs' ? 1000 : 0))) {
      throw new TypeError(`${at}.${key} must be a non-negative integer${key === 'periodMs' ? ' of at least 1000 ms' : ''}, got ${String(value)}`);
    }
  }
  return Object.freeze({ ...limits });
}

/** Creates a meter; validates the options once. */
export function createUsageMeter(options: UsageMeterOptions = {}): UsageMeter {
  const meter = new UsageMeter(options);
  adoptDefaultUsageMeter(meter);
  return meter;
}

/** See {@link createUsageMeter}. */
export class UsageMeter {
  readonly backend: UsageBackend;
  readonly #defaults: UsageLimits;
  readonly #limitsFor: ((userUuid: string) => UsageLimits | undefined) | undefined;
  readonly #overrides = new Map<string, UsageLimits>();
  readonly #estimate: (call: CallEstimateInput) => number;
  readonly #failOpen: boolean;
  readonly #timeoutMs: number;
  readonly #leaseMs: number;
  readonly #maxPending: number;
  readonly #pending: Booking[] = [];
  /** Bookings on their way to the backend. */
  readonly #writing = new Set<Promise<void>>();
  readonly #listeners = new Set<(event: UsageEvent) => void>();
  #retry: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(options: UsageMeterOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('createUsageMeter(options): options must be an object');
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new TypeError(`createUsageMeter: unknown option "${key}"; known: ${[...OPTION_KEYS].join(', ')}`);
    }
    const { backend = new MemoryUsageBackend(), limits = {}, limitsFor, estimateTokens, onStoreError = 'refuse', storeTimeoutMs = 1000, leaseMs = 600_000, maxPending = 10_000 } = options;
    if (backend === null || typeof backend !== 'object' || typeof backend.begin !== 'function' || typeof backend.book !== 'function') {
      throw new TypeError('options.backend must be a usage backend (new MemoryUsageBackend() or new RedisUsageBackend({ redis }))');
    }
    if (limitsFor !== undefined && typeof limitsFor !== 'function') throw new TypeError('options.limitsFor must be a function (userUuid) => limits');
    if (estimateTokens !== undefined && typeof estimateTokens !== 'function') throw new TypeError('options.estimateTokens must be a function ({ promptChars, maxOutputTokens }) => tokens');
    if (onStoreError !== 'refuse' && onStoreError !== 'allow') throw new TypeError(`options.onStoreError must be 'refuse' or 'allow', got ${JSON.stringify(onStoreError)}`);
    for (const [name, value, min] of [['storeTimeoutMs', storeTimeoutMs, 1], ['leaseMs', leaseMs, 1000], ['maxPending', maxPending, 1]] as const) {
      if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`options.${name} must be an integer >= ${min}`);
    }
    this.backend = backend;
    this.#defaults = checkLimits(limits, 'options.limits');
    this.#limitsFor = limitsFor;
    this.#estimate = estimateTokens ?? ((c) => Math.ceil(c.promptChars / 4) + (c.maxOutputTokens ?? 1024));
    this.#failOpen = onStoreError === 'allow';
    this.#timeoutMs = storeTimeoutMs;
    this.#leaseMs = leaseMs;
    this.#maxPending = maxPending;
  }

  /**
   * Sets (or with `null` removes) the operator's override of one user's
   * limits, merged over the defaults and `limitsFor`. Held by this instance:
   * with several instances, give every one the same overrides (or use
   * `limitsFor` on your user database).
   */
  setLimits(userUuid: string, limits: UsageLimits | null): void {
    if (typeof userUuid !== 'string' || userUuid === '') throw new TypeError('setLimits(userUuid, limits): userUuid must be a non-empty string');
    if (limits === null) this.#overrides.delete(userUuid);
    else this.#overrides.set(userUuid, checkLimits(limits, 'setLimits(limits)'));
  }

  /** The limits that apply to a user now. */
  limitsOf(userUuid: string): ResolvedLimits {
    const own = this.#limitsFor?.(userUuid);
    const override = this.#overrides.get(userUuid);
    if (own === undefined && override === undefined) return { periodMs: DAY, ...this.#defaults };
    return { periodMs: DAY, ...this.#defaults, ...(own === undefined ? {} : checkLimits(own, 'limitsFor()')), ...override };
  }

  /** Listens to what the meter records (for metrics); returns the unsubscribe function. */
  on(listener: (event: UsageEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: UsageEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  /**
   * Admits one LLM call: checks the user's limits and reserves the call's
   * estimated tokens and a slot, in one atomic step of the backend. Throws
   * `UsageLimitExceededError` (429) when a limit is reached, and
   * `UsageStoreUnavailableError` (503) when the backend fails and the meter
   * fails closed.
   */
  async admit(target: CallTarget, input: CallEstimateInput): Promise<UsageTicket> {
    const { userUuid } = target;
    const limits = this.limitsOf(userUuid);
    const estimate = Math.max(0, Math.ceil(this.#estimate(input)));
    const callId = randomUUID();
    const now = Date.now();
    let admission;
    try {
      admission = await this.#timed(this.backend.begin({ userUuid, callId, estimate, limits, now, leaseMs: this.#leaseMs }));
    } catch (error) {
      this.#emit({ type: 'storeError', phase: 'admit' });
      if (!this.#failOpen) {
        // The admission may still land later: book the call as never made, so its reservation is released.
        this.#queue({ userUuid, callId, tokens: 0, counters: new Map(), sets: new Map(), periodMs: limits.periodMs, now });
        throw new UsageStoreUnavailableError(`The usage store (${this.backend.kind}) cannot be reached, so no LLM call is let through; retry shortly.`, { cause: error });
      }
      warnOnce('KUC_USAGE_FAIL_OPEN', `The usage store (${this.backend.kind}) failed; LLM calls go out unchecked until it is back (onStoreError: 'allow').`);
      admission = { ok: true } as const;
    }
    if (!admission.ok) {
      this.#emit({ type: 'limited', limit: admission.limit });
      this.#book({ userUuid, callId, tokens: 0, counters: limitedCounters(admission.limit), sets: new Map([[LAST_LIMITED, now]]), periodMs: limits.periodMs, now });
      throw this.limitError(admission.limit, admission.retryAfterMs, limits);
    }
    const started = performance.now();
    let ended = false;
    const end = (usage: ReportedUsage | undefined, error: unknown, failed: boolean): void => {
      if (ended) return;
      ended = true;
      const latencyMs = performance.now() - started;
      const inputTokens = usage?.inputTokens.total ?? 0;
      const outputTokens = usage?.outputTokens.total ?? 0;
      const errorCode = failed ? errorCodeOf(error) : undefined;
      // No usage report (a failed or aborted call, a provider that sends none): the reservation is released, nothing booked.
      const tokens = inputTokens + outputTokens;
      this.#emit({ type: 'call', provider: target.provider, model: target.model, outcome: errorCode === undefined ? 'ok' : errorCode === 'aborted' ? 'aborted' : 'error', inputTokens, outputTokens, latencyMs });
      const at = Date.now();
      this.#book({
        userUuid, callId, tokens,
        counters: llmCallCounters(target.provider, target.model, { inputTokens, outputTokens, latencyMs, errorCode }),
        sets: new Map([[LAST_CALL, at]]),
        periodMs: limits.periodMs,
        now: at,
      });
    };
    return { finish: (usage) => end(usage, undefined, false), fail: (error, usage) => end(usage, error, true) };
  }

  /** The error for a refusal by `limit`. */
  limitError(limit: UsageLimitName, retryAfterMs: number, limits: UsageLimits): UsageLimitExceededError {
    const what: Record<UsageLimitName, string> = {
      tokens: `the ${limits.tokensPerPeriod} tokens of this period`,
      requests: `${limits.requestsPerMinute} LLM calls per minute`,
      concurrent: `${limits.concurrent} LLM calls at once`,
      toolCalls: `${limits.toolCallsPerLoop} tool calls in one agent loop`,
    };
    return new UsageLimitExceededError(
      `This user has used ${what[limit]}, the limit the operator set; retry after ${Math.ceil(retryAfterMs / 1000)} s.`,
      { limit, retryAfterMs },
    );
  }

  /** Records a refusal of a loop's tool calls (the loop ends with the returned error). */
  refuseToolCalls(userUuid: string): UsageLimitExceededError {
    const limits = this.limitsOf(userUuid);
    const now = Date.now();
    this.#emit({ type: 'limited', limit: 'toolCalls' });
    this.#book({ userUuid, callId: randomUUID(), tokens: 0, counters: limitedCounters('toolCalls'), sets: new Map([[LAST_LIMITED, now]]), periodMs: limits.periodMs, now });
    return this.limitError('toolCalls', 1000, limits);
  }

  /**
   * Counts one tool call run on MCP server `server` (the tool bridge calls
   * this; never pass tool arguments or results). For the current user unless
   * `userUuid` is given.
   */
  recordToolCall(server: string, outcome: { ok: boolean; userUuid?: string }): void {
    const userUuid = outcome.userUuid ?? currentUserUuid();
    if (userUuid === undefined) throw new TypeError('recordToolCall() needs a user: call it inside a user scope or pass { userUuid }');
    this.#emit({ type: 'tool', server, ok: outcome.ok });
    const now = Date.now();
    this.#book({ userUuid, callId: randomUUID(), tokens: 0, counters: toolCallCounters(server, outcome.ok), sets: new Map(), periodMs: this.limitsOf(userUuid).periodMs, now });
  }

  /** What one user has spent (waits for bookings still being written). */
  async read(userUuid: string): Promise<UserUsage> {
    await this.flush();
    const limits = this.limitsOf(userUuid);
    const now = Date.now();
    const raw = await this.backend.read(userUuid, limits.periodMs, now);
    const { periodMs, ...shown } = limits;
    return toUserUsage(raw, { ...shown, periodMs }, periodStart(now, periodMs) + periodMs);
  }

  /** Usage of the most recently active users (at most `max`). */
  async list(max = 1000): Promise<UserUsage[]> {
    await this.flush();
    const users = await this.backend.users(max);
    return Promise.all(users.map((u) => this.read(u)));
  }

  /** Bookings waiting for the backend (it failed); replayed by {@link flush}. */
  get pending(): number {
    return this.#pending.length;
  }

  /**
   * Waits for the bookings on their way to the backend, and writes those kept
   * while it was down (each applies once). After it, another instance reads
   * everything this one booked.
   */
  async flush(): Promise<void> {
    await Promise.all(this.#writing);
    return this.#replay();
  }

  #replay(): Promise<void> {
    if (this.#flushing !== undefined) return this.#flushing;
    if (this.#pending.length === 0) return Promise.resolve();
    this.#flushing = (async () => {
      try {
        while (this.#pending.length > 0) {
          await this.#timed(this.backend.book(this.#pending[0]!));
          this.#pending.shift();
        }
      } catch {
        this.#scheduleRetry();
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  /** Stops the retry timer and closes the backend. */
  async close(): Promise<void> {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.backend.close();
  }

  #book(booking: Booking): void {
    if (this.#pending.length > 0) {
      this.#queue(booking);
      return;
    }
    const writing: Promise<void> = this.#timed(this.backend.book(booking))
      .catch(() => {
        this.#emit({ type: 'storeError', phase: 'book' });
        this.#queue(booking);
      })
      .finally(() => this.#writing.delete(writing));
    this.#writing.add(writing);
  }

  #queue(booking: Booking): void {
    this.#pending.push(booking);
    if (this.#pending.length > this.#maxPending) {
      this.#pending.shift();
      warnOnce('KUC_USAGE_PENDING_DROPPED', `The usage store (${this.backend.kind}) has been down for ${this.#maxPending} bookings; the oldest are dropped (maxPending).`);
    }
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#replay();
    }, 500);
    this.#retry.unref();
  }

  #timed<T>(promise: Promise<T>): Promise<T> {
    if (!this.backend.remote) return promise;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`The usage store did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}

/** A bounded code for a failed call (no message, no content). */
export function errorCodeOf(error: unknown): string {
  const e = error as { statusCode?: unknown; name?: unknown } | null | undefined;
  if (typeof e?.statusCode === 'number') return `http_${e.statusCode}`;
  if (e?.name === 'AbortError') return 'aborted';
  if (e?.name === 'TimeoutError') return 'timeout';
  return 'error';
}
