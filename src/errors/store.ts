/**
 * The shared store or the app's persistence cannot serve a user's context now.
 *
 * @module
 */
import { RequestError, UserContextError, type UserContextErrorCode } from './base.js';

/**
 * The shared context store (Redis) cannot be reached, or answered with data
 * this instance cannot read: a request whose context is not cached here, or a
 * write, cannot be served now. The middleware answers 503
 * `context_store_unavailable` with `Retry-After`; a write that fails with it
 * was applied entirely or not at all (retrying it is safe).
 */
export class ContextStoreUnavailableError extends RequestError {
  static override readonly code: UserContextErrorCode = 'ERR_CONTEXT_STORE_UNAVAILABLE';
  static override status = 503;
  static override error = 'context_store_unavailable';
  static override bearerError = undefined;
}

/**
 * The app's loader (`persistence.load`) failed, timed out or returned
 * something that is not a configuration, for a user whose context is not
 * cached: the request is answered 503 `context_load_failed` with
 * `Retry-After`, and never with another user's context or the defaults. The
 * loader's own error is the `cause` (never in the message, which reaches the
 * client).
 */
export class ContextLoadError extends ContextStoreUnavailableError {
  static override readonly code = 'ERR_CONTEXT_LOAD_FAILED';
  static override error = 'context_load_failed';
}

/**
 * The app's commit or delete hook (`persistence.onCommit` / `onDelete`)
 * failed or timed out: the write is not acknowledged and not applied in the
 * store, and the user's cached context is dropped, so the next request reads
 * the app's database again (503 `context_save_failed`; retrying is safe).
 */
export class ContextSaveError extends ContextStoreUnavailableError {
  static override readonly code = 'ERR_CONTEXT_SAVE_FAILED';
  static override error = 'context_save_failed';
}

/**
 * A synchronous read or write of a shared store (`openScope()`,
 * `currentGeneration()`, `commit()`) needs the user's context, which is not
 * loaded (or not known to be current) in this process. Use the asynchronous
 * paths: the middleware, `await runAsUser(userUuid, fn)`, `configureUser()`.
 */
export class ContextNotLoadedError extends UserContextError {
  static override readonly code = 'ERR_CONTEXT_NOT_LOADED';
}
