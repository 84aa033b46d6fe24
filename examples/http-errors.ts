/**
 * The example app's JSON errors: every failure below the auth middleware is
 * answered with its HTTP status and a stable `error` code (never a stack);
 * what is left is logged and answered 500.
 *
 * @module
 */
import type Koa from 'koa';
import type { Logger } from 'pino';
import { APICallError, RetryError } from 'ai';
import {
  ClientDisconnectedError,
  ConfigurationConflictError,
  ContextStoreUnavailableError,
  InvalidProfileError,
  McpConnectError,
  RequestError,
  UsageLimitExceededError,
  UsageStoreUnavailableError,
  UserContextError,
} from '../src/index.js';
import { McpBackoffError, McpConnectionLostError, McpPoolExhaustedError } from '../src/mcp.js';
import { MismatchError } from './agent/executor.js';
import { HttpError } from './body.js';

/** JSON errors for everything below the auth middleware; never a stack. */
export function errorsWith(logger: Logger) {
  // No async frame: one reaction on the rest of the chain (every request passes here).
  return function errors(ctx: Koa.Context, next: Koa.Next): Promise<void> {
    return next().then(
      () => notFound(ctx),
      (err: unknown) => {
        try {
          answer(ctx, err);
        } catch (unknown) {
          // Runs after the user scope has ended: stamp the user explicitly.
          logger.error({ err: unknown, userUuid: ctx.state['userUuid'] }, 'request failed');
          ctx.status = 500;
          ctx.body = { error: 'internal_error', message: 'Something went wrong; the error was logged.' };
        }
      },
    );
  };
}

/** Nothing answered: a JSON 404 naming what was asked. */
function notFound(ctx: Koa.Context): void {
  if (ctx.status === 404 && ctx.body === undefined) {
    ctx.status = 404;
    ctx.body = { error: 'not_found', message: `No route for ${ctx.method} ${ctx.path}.` };
  }
}

/** Answers a known failure with its status and code; throws anything else back. */
function answer(ctx: Koa.Context, err: unknown): void {
  if (err instanceof HttpError) {
    ctx.status = err.status;
    ctx.body = { error: err.error, message: err.message };
  } else if (APICallError.isInstance(err) || RetryError.isInstance(err)) {
    // The provider refused or failed (after the SDK's retries); its response is logged, never forwarded.
    const cause = RetryError.isInstance(err) ? err.lastError : err;
    const status = APICallError.isInstance(cause) ? cause.statusCode : undefined;
    ctx.status = 502;
    ctx.body = { error: 'llm_provider_error', message: `The LLM provider answered ${status ?? 'with an error'}; try again later.` };
  } else if (err instanceof UsageLimitExceededError || err instanceof UsageStoreUnavailableError) {
    // A usage limit refused the call (429, Retry-After, which limit), or the usage store is down and the meter fails closed (503).
    ctx.status = err.status;
    ctx.set(err.headers ?? {});
    ctx.body = { error: err.error, message: err.message, ...(err instanceof UsageLimitExceededError ? { limit: err.limit } : {}) };
  } else if (err instanceof ContextStoreUnavailableError) {
    // Redis is down: a write answered with this is never applied afterwards (fenced); retrying is safe.
    ctx.status = 503;
    ctx.body = { error: err.error, message: err.message };
    ctx.set('Retry-After', '5');
  } else if (err instanceof MismatchError) {
    ctx.status = 409;
    ctx.body = { error: 'configuration_mismatch', message: err.message };
  } else if (err instanceof ClientDisconnectedError) {
    // Nobody is listening any more; 499 is what proxies log for this.
    ctx.status = 499;
    ctx.body = { error: 'client_closed_request', message: err.message };
  } else if (err instanceof McpBackoffError || err instanceof McpPoolExhaustedError) {
    // Nothing was sent to the MCP server: retrying after the delay is safe.
    ctx.status = 503;
    ctx.body = { error: err instanceof McpBackoffError ? 'mcp_backoff' : 'mcp_busy', message: err.message };
    ctx.set('Retry-After', String(Math.max(1, Math.ceil((err.retryAfterMs ?? 1000) / 1000))));
  } else if (err instanceof McpConnectionLostError) {
    ctx.status = 502;
    ctx.body = { error: 'mcp_connection_lost', message: err.message };
  } else if (err instanceof McpConnectError) {
    ctx.status = 502;
    ctx.body = { error: 'mcp_unavailable', message: err.message };
  } else if (err instanceof InvalidProfileError) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_profile', message: err.message };
  } else if (err instanceof ConfigurationConflictError) {
    ctx.status = 409;
    ctx.body = { error: 'configuration_conflict', message: err.message };
  } else if (err instanceof RequestError && err.status < 500) {
    // LLM configuration errors (missing_credentials, model_not_allowed, …): 400 with their stable code.
    ctx.status = err.status;
    ctx.body = { error: err.error, message: err.message };
  } else if (err instanceof UserContextError) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_configuration', message: err.message };
  } else {
    throw err;
  }
}

