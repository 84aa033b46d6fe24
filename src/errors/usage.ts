/**
 * Usage limits (koa-user-context/usage): a call refused by a limit, or by a
 * usage store that is down.
 *
 * @module
 */
import { RequestError } from './base.js';

/** Which of a user's limits refused a call. */
export type UsageLimitName = 'tokens' | 'requests' | 'concurrent' | 'toolCalls';

/**
 * A call was refused before it went out: the user reached a limit the
 * operator set (tokens per period, requests per minute, concurrent calls,
 * tool calls per loop). A 429 `usage_limit_exceeded` with `Retry-After`
 * (`retryAfterMs`, rounded up to seconds). Nothing was sent to the provider.
 */
export class UsageLimitExceededError extends RequestError {
  static override readonly code = 'ERR_USAGE_LIMIT_EXCEEDED';
  static override status = 429;
  static override error = 'usage_limit_exceeded';
  /** The limit that was reached. */
  readonly limit: UsageLimitName;
  /** Milliseconds after which the same call may pass (for `Retry-After`). */
  readonly retryAfterMs: number;

  constructor(message: string, options: { limit: UsageLimitName; retryAfterMs: number; cause?: unknown }) {
    super(message, options);
    this.limit = options.limit;
    this.retryAfterMs = options.retryAfterMs;
    this.headers = { 'Retry-After': String(Math.max(1, Math.ceil(options.retryAfterMs / 1000))) };
    this.expose = true;
  }
}

/**
 * The shared usage store (Redis) could not be reached and the meter is set
 * to fail closed (`onStoreError: 'refuse'`): the call was not sent. A 503
 * `usage_store_unavailable` with `Retry-After`.
 */
export class UsageStoreUnavailableError extends RequestError {
  static override readonly code = 'ERR_USAGE_STORE_UNAVAILABLE';
  static override status = 503;
  static override error = 'usage_store_unavailable';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.headers = { 'Retry-After': '5' };
  }
}
