/**
 * The shapes of per-user usage and limits: what a meter records (counters
 * only: never a prompt, an answer, a key or a tool argument), what an
 * operator limits, and what a backend (memory, Redis) must do atomically.
 *
 * @module
 */
import type { UsageLimitName } from '../errors.js';

/**
 * What one user may spend. Every limit is off unless set; the operator sets
 * them (defaults and per-user overrides), a user never does.
 */
export interface UsageLimits {
  /**
   * Input + output tokens per period (`periodMs`), as the provider reports
   * them. A call is let through while the tokens used plus those reserved by
   * calls in flight are below the limit, so a user overshoots by at most one
   * call's estimate.
   * @default undefined (no token limit)
   */
  tokensPerPeriod?: number;
  /**
   * Length of the token period, in ms; periods are aligned to the epoch
   * (a day period resets at 00:00 UTC).
   * @default 86_400_000 (one day)
   */
  periodMs?: number;
  /**
   * LLM calls (loop steps) per minute.
   * @default undefined (no rate limit)
   */
  requestsPerMinute?: number;
  /**
   * LLM calls (streams included) in flight at once. A loop's steps run one
   * after the other, so this also bounds the user's parallel loops.
   * @default undefined (no concurrency limit)
   */
  concurrent?: number;
  /**
   * Tool calls the model may ask for in one loop (`UserLlm.generateText` /
   * `streamText`); the step that asks for more ends the loop with
   * `UsageLimitExceededError`, and its tool calls are not run.
   * @default undefined (no tool-call limit)
   */
  toolCallsPerLoop?: number;
}

/** Limits with the period resolved. */
export interface ResolvedLimits extends UsageLimits {
  readonly periodMs: number;
}

/** Usage of one provider/model by one user. */
export interface ModelUsage {
  readonly provider: string;
  readonly model: string;
  /** Calls that reached the provider (errors included). */
  readonly calls: number;
  readonly errors: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Sum of the calls' durations (ms), until the last byte of a stream. */
  readonly latencyMs: number;
}

/** Tool calls run on one MCP server for one user. */
export interface ToolServerUsage {
  readonly server: string;
  readonly calls: number;
  readonly errors: number;
}

/** What one user has spent; counters only. */
export interface UserUsage {
  readonly userUuid: string;
  readonly calls: number;
  readonly errors: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly latencyMs: number;
  readonly toolCalls: number;
  readonly models: readonly ModelUsage[];
  /** Failed calls by code (`http_429`, `aborted`, `timeout`, `error`). */
  readonly errorsByCode: Readonly<Record<string, number>>;
  readonly tools: readonly ToolServerUsage[];
  /** Calls refused by a limit, by limit. */
  readonly limited: Readonly<Partial<Record<UsageLimitName, number>>>;
  /** ISO time of the last refusal, `null` if never. */
  readonly lastLimitedAt: string | null;
  /** ISO time of the last recorded call, `null` if none. */
  readonly lastCallAt: string | null;
  /** The current token period. */
  readonly period: { readonly tokensUsed: number; readonly tokensReserved: number; readonly resetsAt: string };
  /** LLM calls in flight now. */
  readonly inFlight: number;
  /** The limits that apply to this user now. */
  readonly limits: UsageLimits;
}

/** How a backend answers an admission. */
export type Admission =
  | { readonly ok: true }
  | { readonly ok: false; readonly limit: UsageLimitName; readonly retryAfterMs: number };

/** One admission request: reserve `estimate` tokens and a concurrency slot for `callId`. */
export interface BeginRequest {
  readonly userUuid: string;
  readonly callId: string;
  readonly estimate: number;
  readonly limits: ResolvedLimits;
  readonly now: number;
  /** After this long a slot whose call never ended (a stream nobody read, a crashed instance) is free again. */
  readonly leaseMs: number;
}

/**
 * One booking, applied at most once per `callId` (a retry after a lost
 * reply, or a replay after an outage, changes nothing): settles the call's
 * reservation with `tokens`, frees its slot, and adds `counters`.
 */
export interface Booking {
  readonly userUuid: string;
  readonly callId: string;
  /** Tokens to book in the period (the call's real usage); 0 for a tool call or a refusal. */
  readonly tokens: number;
  /** Flat counters to add (see fields.ts). */
  readonly counters: ReadonlyMap<string, number>;
  /** Fields to set (times: last call, last refusal). */
  readonly sets: ReadonlyMap<string, number>;
  /** Period length, for the window the tokens go to when nothing was reserved. */
  readonly periodMs: number;
  readonly now: number;
}

/** Flat counters and period state of one user, as a backend keeps them. */
export interface RawUsage {
  readonly userUuid: string;
  readonly counters: ReadonlyMap<string, number>;
  readonly tokensUsed: number;
  readonly tokensReserved: number;
  readonly inFlight: number;
}

/**
 * Where usage lives: in this process ({@link MemoryUsageBackend}) or shared
 * by every instance (`RedisUsageBackend`). `begin` checks and reserves in one
 * atomic step; `book` is idempotent per `callId`.
 */
export interface UsageBackend {
  /** `'memory'` or `'redis'`: what the admin shows. */
  readonly kind: string;
  /** Whether it lives outside this process: then every call to it has `storeTimeoutMs` and the fault mode applies. */
  readonly remote: boolean;
  begin(request: BeginRequest): Promise<Admission>;
  book(booking: Booking): Promise<void>;
  read(userUuid: string, periodMs: number, now: number): Promise<RawUsage>;
  /** Users with recorded usage, most recently active first, at most `max`. */
  users(max: number): Promise<string[]>;
  close(): Promise<void>;
}
