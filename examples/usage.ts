/**
 * The example app's answer to a call a usage limit refused: 429 with
 * `Retry-After` and the stable code (`usage_limit_exceeded`, and which limit),
 * or 503 `usage_store_unavailable` when the usage store is down and the
 * meter fails closed. Mounted right inside the app's JSON error handler.
 */
import type Koa from 'koa';
import { UsageLimitExceededError, UsageStoreUnavailableError } from '../src/index.js';

export async function usageErrors(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  try {
    await next();
  } catch (err) {
    if (!(err instanceof UsageLimitExceededError) && !(err instanceof UsageStoreUnavailableError)) throw err;
    ctx.status = err.status;
    ctx.set(err.headers ?? {});
    ctx.body = { error: err.error, message: err.message, ...(err instanceof UsageLimitExceededError ? { limit: err.limit } : {}) };
  }
}
