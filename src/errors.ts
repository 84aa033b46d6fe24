/**
 * Every failure this library reports is an instance of {@link UserContextError}
 * with a stable `code` (`ERR_…`). Errors that reach an HTTP client also carry
 * the `status` and the snake_case `error` string sent in the JSON body.
 *
 * @module
 */
import { isKind, stamp } from './brand.js';

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

/** A request's credentials were refused (401/400), or its key cannot be had now (503). */
export class AuthError extends RequestError {
  static override readonly code: UserContextErrorCode = 'ERR_AUTH';
  static override status = 401;
  static override error = 'unauthorized';
  static override bearerError: 'invalid_request' | 'invalid_token' | undefined = 'invalid_token';
}

/** No token in the request (and the route is not public). */
export class MissingTokenError extends AuthError {
  static override readonly code = 'ERR_MISSING_TOKEN';
  static override error = 'missing_token';
  static override bearerError = undefined;
}

/** The `Authorization` header is malformed or sent more than once. */
export class MalformedAuthorizationError extends AuthError {
  static override readonly code = 'ERR_MALFORMED_AUTHORIZATION';
  static override status = 400;
  static override error = 'invalid_request';
  static override bearerError = 'invalid_request' as const;
}

/** Signature, algorithm, issuer, audience or structure of the token is wrong. */
export class InvalidTokenError extends AuthError {
  static override readonly code = 'ERR_INVALID_TOKEN';
  static override error = 'invalid_token';
}

/** The token's `exp` is in the past. */
export class TokenExpiredError extends AuthError {
  static override readonly code = 'ERR_TOKEN_EXPIRED';
  static override error = 'token_expired';
}

/** The token's `nbf` is in the future. */
export class TokenNotActiveError extends AuthError {
  static override readonly code = 'ERR_TOKEN_NOT_ACTIVE';
  static override error = 'token_not_yet_valid';
}

/** The token's subject claim is missing or not a valid user id. */
export class InvalidSubjectError extends AuthError {
  static override readonly code = 'ERR_INVALID_SUBJECT';
  static override error = 'invalid_subject';
}

/** The app's `isRevoked(ctx, claims, token)` said the token is revoked. */
export class TokenRevokedError extends AuthError {
  static override readonly code = 'ERR_TOKEN_REVOKED';
  static override error = 'token_revoked';
}

/**
 * The token is not an access token: `requireAccessTokenType` is on and its
 * `typ` header is not `at+jwt` (RFC 9068), e.g. an OpenID Connect ID token.
 */
export class InvalidTokenTypeError extends AuthError {
  static override readonly code = 'ERR_INVALID_TOKEN_TYPE';
  static override error = 'invalid_token_type';
}

/** The app's `isRevoked()` threw or rejected: revocation cannot be checked now, the client may retry. */
export class RevocationCheckError extends AuthError {
  static override readonly code = 'ERR_REVOCATION_CHECK_FAILED';
  static override status = 503;
  static override error = 'revocation_check_unavailable';
  static override bearerError = undefined;
}

/** `getKey()` could not produce a key (key server down, …): the client may retry. */
export class KeyUnavailableError extends AuthError {
  static override readonly code = 'ERR_KEY_UNAVAILABLE';
  static override status = 503;
  static override error = 'key_unavailable';
  static override bearerError = undefined;
}

/**
 * `getKey()` (or a `secret` function) returned a key that can never verify a
 * token: an HMAC secret under 32 bytes, a PEM that is not a public key, a
 * value that is no key. A server configuration error, not an outage: 500
 * `key_misconfigured` without `Retry-After` (retrying cannot help), and one
 * process warning `KUC_KEY_MISCONFIGURED` per cause saying what to fix.
 */
export class KeyMisconfiguredError extends AuthError {
  static override readonly code = 'ERR_KEY_MISCONFIGURED';
  static override status = 500;
  static override error = 'key_misconfigured';
  static override bearerError = undefined;
}

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

// --- Agent integration (MCP clients, profile overrides) ---------------------

/**
 * A user's MCP client could not connect to (or initialise with) its server.
 * The base class of every MCP connection failure below; an app answers all
 * of them with 502 or 503, never 500.
 */
export class McpConnectError extends UserContextError {
  static override readonly code: UserContextErrorCode = 'ERR_MCP_CONNECT_FAILED';
  /** Milliseconds after which a retry may succeed (for `Retry-After`); `undefined` when unknown. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * The MCP connection broke while a call was on the wire (the stdio child
 * exited, the stream was cut): the call may or may not have run on the server,
 * so it was not repeated. The connection is rebuilt on the next call.
 */
export class McpConnectionLostError extends McpConnectError {
  static override readonly code = 'ERR_MCP_CONNECTION_LOST';
}

/**
 * Connecting to this MCP server failed moments ago; until the back-off delay
 * (`retryAfterMs`) has passed, requests fail fast instead of piling up on a
 * server that is down.
 */
export class McpBackoffError extends McpConnectError {
  static override readonly code = 'ERR_MCP_BACKOFF';
}

/**
 * Every live MCP connection of this instance (`maxConnections`) was in use
 * for longer than `acquireTimeout`, so none could be closed to make room.
 */
export class McpPoolExhaustedError extends McpConnectError {
  static override readonly code = 'ERR_MCP_POOL_EXHAUSTED';
}

/**
 * The operator's tool policy for this MCP server (the registry entry's
 * `tools: { allow, hide }`) hides the tool that was called; it was not sent
 * to the server.
 */
export class McpToolNotAllowedError extends UserContextError {
  static override readonly code = 'ERR_MCP_TOOL_NOT_ALLOWED';
}

/**
 * The user's MCP client answered `listTools()` or `callTool()` with something
 * that is not an MCP answer (a look-alike of the SDK `Client`, or a transport
 * that mangles answers). The message names the method and the shape that
 * came back; nothing of it was used.
 */
export class McpInvalidAnswerError extends UserContextError {
  static override readonly code = 'ERR_MCP_INVALID_ANSWER';
}

/** A profile override given to `runWithProfile()` is not valid. */
export class InvalidProfileError extends UserContextError {
  static override readonly code = 'ERR_INVALID_PROFILE';
}

/**
 * The abort reason of a request's signal when the HTTP client went away
 * before the response was complete. Its `name` is `'AbortError'`, as code
 * that handles aborted fetches and LLM SDK calls expects.
 */
export class ClientDisconnectedError extends UserContextError {
  static override readonly code = 'ERR_CLIENT_DISCONNECTED';

  constructor(message = 'The HTTP client disconnected before the response was complete.', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

// --- LLM providers (koa-user-context/ai) ------------------------------------

/**
 * A user's LLM configuration cannot be served: nothing was sent to any
 * provider. The subclasses say why; each is a 400 with a stable `error`.
 * Messages never contain a credential.
 */
export class LlmConfigurationError extends RequestError {
  static override readonly code: UserContextErrorCode = 'ERR_LLM_CONFIGURATION';
  static override status = 400;
  static override error = 'invalid_llm_configuration';
}

/** The configured provider is not one the operator allows. */
export class ProviderNotAllowedError extends LlmConfigurationError {
  static override readonly code = 'ERR_PROVIDER_NOT_ALLOWED';
  static override error = 'provider_not_allowed';
}

/** The configured model is not on the operator's list for its provider. */
export class ModelNotAllowedError extends LlmConfigurationError {
  static override readonly code = 'ERR_MODEL_NOT_ALLOWED';
  static override error = 'model_not_allowed';
}

/** The configuration names an endpoint URL that is not on the operator's list. */
export class BaseUrlNotAllowedError extends LlmConfigurationError {
  static override readonly code = 'ERR_BASE_URL_NOT_ALLOWED';
  static override error = 'base_url_not_allowed';
}

/**
 * The provider needs credentials the user's configuration does not have (and
 * the operator did not allow the server's own environment for it).
 */
export class MissingCredentialsError extends LlmConfigurationError {
  static override readonly code = 'ERR_MISSING_CREDENTIALS';
  static override error = 'missing_credentials';
}

/** A provider-specific setting is missing or malformed (`awsRegion`, Azure deployment, …). */
export class InvalidProviderSettingsError extends LlmConfigurationError {
  static override readonly code = 'ERR_INVALID_PROVIDER_SETTINGS';
  static override error = 'invalid_provider_settings';
}

/**
 * An LLM client was used after the store disposed it (its configuration was
 * replaced and the requests using it had ended): the code kept it past its
 * request. Read it again inside the request.
 */
export class LlmClientClosedError extends UserContextError {
  static override readonly code = 'ERR_LLM_CLIENT_CLOSED';
}

// --- Usage limits (koa-user-context/usage) ---------------------------------

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

/**
 * The JSON `error` codes a rejected credential can produce (every
 * {@link AuthError} subclass): metrics start a series at 0 for each.
 */
export function authErrorCodes(): readonly string[] {
  return [...new Set(AUTH_ERRORS.map((cls) => cls.error))];
}

const AUTH_ERRORS: ReadonlyArray<typeof AuthError> = [
  MissingTokenError,
  MalformedAuthorizationError,
  InvalidTokenError,
  TokenExpiredError,
  TokenNotActiveError,
  InvalidSubjectError,
  KeyUnavailableError,
  KeyMisconfiguredError,
];
