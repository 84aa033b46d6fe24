/**
 * koa-jwt's `isRevoked(ctx, claims, token)`, consulted on every request that
 * carries a token — also when the token's verification comes from the
 * cache — so a revocation takes effect on the very next request.
 *
 * @module
 */
import type { Context } from 'koa';
import { RevocationCheckError, TokenRevokedError } from '../errors.js';

/**
 * Returns (or resolves) `true` when the token must be refused. `claims` are
 * the verified claims (frozen), `token` the raw token.
 */
export type IsRevoked = (
  ctx: Context,
  claims: Readonly<Record<string, unknown>>,
  token: string,
) => boolean | Promise<boolean>;

const REVOKED = 'The token has been revoked. Sign in again to get a new one.';

function failed(cause: unknown): RevocationCheckError {
  return new RevocationCheckError('Whether the token is revoked cannot be checked right now; retry later.', { cause });
}

function verdictOf(revoked: unknown): void {
  if (revoked === true) throw new TokenRevokedError(REVOKED);
  if (revoked !== false) {
    throw failed(new TypeError(`isRevoked() must return a boolean, got ${revoked === null ? 'null' : typeof revoked}`));
  }
}

/**
 * Calls `isRevoked`. Returns nothing when it answered `false` synchronously,
 * a promise when it answered asynchronously; throws (or rejects with)
 * {@link TokenRevokedError} for a revoked token and
 * {@link RevocationCheckError} when the check itself failed (fail closed).
 */
export function checkRevocation(
  isRevoked: IsRevoked,
  ctx: Context,
  claims: Readonly<Record<string, unknown>>,
  token: string,
): void | Promise<void> {
  let answer: boolean | Promise<boolean>;
  try {
    answer = isRevoked(ctx, claims, token);
  } catch (cause) {
    throw failed(cause);
  }
  if (answer instanceof Promise || (typeof answer === 'object' && answer !== null && typeof (answer as PromiseLike<boolean>).then === 'function')) {
    return Promise.resolve(answer).then(verdictOf, (cause: unknown) => {
      throw failed(cause);
    });
  }
  verdictOf(answer);
}
