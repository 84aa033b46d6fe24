/**
 * Refused credentials (401/400) and keys that cannot be had (503) or can
 * never verify (500): the {@link AuthError} family the middleware answers.
 *
 * @module
 */
import { RequestError, type UserContextErrorCode } from './base.js';

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
