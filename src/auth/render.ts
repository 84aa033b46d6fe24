/**
 * How the middleware reports a failure: by answering itself (JSON
 * `{ error, message }`, RFC 6750 `WWW-Authenticate`, `Retry-After` on 503),
 * or, with `throwErrors`, by throwing the error for the app's error handler,
 * shaped like koa-jwt's `ctx.throw(401, msg, { originalError })` with the
 * same headers.
 *
 * @module
 */
import type { Context } from 'koa';
import { AuthError, RequestError, StoreClosedError } from '../errors.js';

/** How failures are rendered; fixed when the middleware is created. */
export interface RenderOptions {
  realm: string | undefined;
  throwErrors: boolean;
  genericErrors: boolean;
}

/** The message of every 401 with `genericErrors` (koa-jwt's default message). */
export const GENERIC_MESSAGE = 'Authentication Error';

/** Seconds a client is told to wait after a 503. */
const RETRY_AFTER = 5;

/** Answers (or throws) for a request the middleware refuses. */
export function renderFailure(ctx: Context, error: RequestError, options: RenderOptions): void {
  let shown = error;
  if (options.genericErrors && error.status === 401) {
    shown = new AuthError(GENERIC_MESSAGE, { cause: error });
    (shown as { bearerError: RequestError['bearerError'] }).bearerError = error.bearerError;
  }
  const headers: Record<string, string> = {};
  if (shown.status === 401 || shown.status === 400) headers['WWW-Authenticate'] = challenge(options.realm, shown, !options.genericErrors);
  if (shown.status === 503) headers['Retry-After'] = String(retryAfterOf(error));
  if (options.throwErrors) {
    shown.expose = true;
    shown.headers = headers;
    shown.originalError = error.cause ?? error;
    throw shown;
  }
  ctx.status = shown.status;
  ctx.body = {
    error: shown.error,
    message: shown instanceof StoreClosedError ? 'The server is shutting down; retry on another instance.' : shown.message,
  };
  ctx.set(headers);
}

/** `Retry-After` seconds: the cause's own hint (e.g. a JWKS retry backoff) when it has one. */
function retryAfterOf(error: RequestError): number {
  const hint = (error.cause as { retryAfter?: unknown } | undefined)?.retryAfter;
  return typeof hint === 'number' && Number.isFinite(hint) && hint >= 1 ? Math.ceil(hint) : RETRY_AFTER;
}

/** The RFC 6750 challenge for an error. */
export function challenge(realm: string | undefined, error: RequestError, describe = true): string {
  const parts: string[] = [];
  if (realm !== undefined) parts.push(`realm="${realm}"`);
  if (error.bearerError !== undefined) {
    parts.push(`error="${error.bearerError}"`);
    if (describe) parts.push(`error_description="${error.message.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, '')}"`);
  }
  return parts.length > 0 ? `Bearer ${parts.join(', ')}` : 'Bearer';
}
