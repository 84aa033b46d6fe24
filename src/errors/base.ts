/**
 * The base classes: {@link UserContextError} (every error of this library,
 * with a stable `code` from one union), {@link RequestError} (answered over
 * HTTP with `status` and `error`), and the errors of the context itself.
 *
 * @module
 */
import { isKind, stamp } from '../brand.js';

/** Every `code` an error of this library can have. */
export type UserContextErrorCode =
  | 'ERR_USER_CONTEXT'
  | 'ERR_REQUEST'
  | 'ERR_USER_CONTEXT_MISSING'
  | 'ERR_INVALID_USER_ID'
  | 'ERR_INVALID_CONTEXT_VALUE'
  | 'ERR_CONFIGURATION_CONFLICT'
  | 'ERR_STORE_CLOSED'
  | 'ERR_AUTH'
  | 'ERR_MISSING_TOKEN'
  | 'ERR_MALFORMED_AUTHORIZATION'
  | 'ERR_INVALID_TOKEN'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_ACTIVE'
  | 'ERR_INVALID_SUBJECT'
  | 'ERR_KEY_UNAVAILABLE'
  | 'ERR_KEY_MISCONFIGURED'
  | 'ERR_TOKEN_REVOKED'
  | 'ERR_INVALID_TOKEN_TYPE'
  | 'ERR_REVOCATION_CHECK_FAILED'
  | 'ERR_CONTEXT_STORE_UNAVAILABLE'
  | 'ERR_CONTEXT_NOT_LOADED'
  | 'ERR_CONTEXT_LOAD_FAILED'
  | 'ERR_CONTEXT_SAVE_FAILED'
  | 'ERR_MCP_CONNECT_FAILED'
  | 'ERR_MCP_CONNECTION_LOST'
  | 'ERR_MCP_BACKOFF'
  | 'ERR_MCP_POOL_EXHAUSTED'
  | 'ERR_MCP_TOOL_NOT_ALLOWED'
  | 'ERR_MCP_INVALID_ANSWER'
  | 'ERR_INVALID_PROFILE'
  | 'ERR_CLIENT_DISCONNECTED'
  | 'ERR_LLM_CONFIGURATION'
  | 'ERR_PROVIDER_NOT_ALLOWED'
  | 'ERR_MODEL_NOT_ALLOWED'
  | 'ERR_BASE_URL_NOT_ALLOWED'
  | 'ERR_MISSING_CREDENTIALS'
  | 'ERR_INVALID_PROVIDER_SETTINGS'
  | 'ERR_LLM_CLIENT_CLOSED'
  | 'ERR_USAGE_LIMIT_EXCEEDED'
  | 'ERR_USAGE_STORE_UNAVAILABLE';

/**
 * Base class of every error thrown by koa-user-context.
 *
 * `instanceof` works across two copies of the package loaded in one process
 * (an ESM and a CJS copy, or a duplicated dependency): it compares the codes
 * of the error's class chain, not constructors.
 */
export class UserContextError extends Error {
  /** A stable, machine-readable code such as `ERR_USER_CONTEXT_MISSING`. */
  static readonly code: UserContextErrorCode = 'ERR_USER_CONTEXT';
  /** The code of this error; same as the static `code` of its class. */
  readonly code: UserContextErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = (new.target as typeof UserContextError).code;
    stamp(this, new.target, 'code');
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return isKind(value, this.code);
  }
}

/**
 * A helper that needs the current user was called outside any user scope in
 * `multi-user` mode.
 */
export class UserContextMissingError extends UserContextError {
  static override readonly code = 'ERR_USER_CONTEXT_MISSING';
}

/** A user id (from a token or passed explicitly) does not have the expected shape. */
export class InvalidUserIdError extends UserContextError {
  static override readonly code = 'ERR_INVALID_USER_ID';
}

/** A value passed to `configureUser()` or a setter cannot be stored. */
export class InvalidContextValueError extends UserContextError {
  static override readonly code = 'ERR_INVALID_CONTEXT_VALUE';
}

/**
 * A write from inside a request hands over a client built for the request's
 * snapshot, but another request changed a field that client depends on in the
 * meantime. Nothing was applied; rebuild the client and retry.
 */
export class ConfigurationConflictError extends UserContextError {
  static override readonly code = 'ERR_CONFIGURATION_CONFLICT';
}


/**
 * Base class of the errors the middleware turns into an HTTP response:
 * `status` is the HTTP status and `error` the stable code sent in the JSON
 * body (`{ error, message }`).
 */
export class RequestError extends UserContextError {
  static override readonly code: UserContextErrorCode = 'ERR_REQUEST';
  /** HTTP status of the response. */
  static status = 500;
  /** The `error` field of the JSON body. */
  static error = 'internal_error';
  /** RFC 6750 `error` attribute of `WWW-Authenticate`, if any. */
  static bearerError: 'invalid_request' | 'invalid_token' | undefined = undefined;

  readonly status: number;
  readonly error: string;
  readonly bearerError: 'invalid_request' | 'invalid_token' | undefined;
  /**
   * Set when the middleware throws the error for the app's error handler
   * (`throwErrors: true`, koa-jwt style): Koa sends `message` when `expose`
   * is true and sets `headers` (`WWW-Authenticate`, `Retry-After`) on the
   * response; `originalError` is the underlying failure, as koa-jwt names it.
   */
  declare expose?: boolean;
  declare headers?: Record<string, string>;
  declare originalError?: unknown;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    const cls = new.target as typeof RequestError;
    this.status = cls.status;
    this.error = cls.error;
    this.bearerError = cls.bearerError;
  }
}

/** The store was closed; no new scope can be opened on it (the middleware answers 503 `shutting_down`). */
export class StoreClosedError extends RequestError {
  static override readonly code = 'ERR_STORE_CLOSED';
  static override status = 503;
  static override error = 'shutting_down';
}
