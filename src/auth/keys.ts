/**
 * Keys as the verifier uses them: every input (secret, PEM, `KeyObject`)
 * turned into a `KeyObject` of the right family once, and the lease a key
 * resolver may attach to a key so that verified tokens cached with it are
 * dropped when the key is.
 *
 * @module
 */
import { KeyObject, createPublicKey, createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AuthError, InvalidTokenError, KeyMisconfiguredError, TokenExpiredError, TokenNotActiveError } from '../errors.js';
import { warnOnce } from '../warn.js';

/** A key as apps hold it: a secret, a PEM string/Buffer or a `KeyObject`. */
export type KeyInput = string | Buffer | KeyObject;

/**
 * A key with a deadline, as a key resolver such as `jwksKeyResolver` returns
 * it. A verified token cached with this key is served from the cache only
 * while `validUntil` (ms since the epoch) is in the future; the resolver moves
 * it forward each time it confirms the key is still published, and sets it
 * to 0 when the key is gone.
 */
export interface KeyLease {
  readonly key: KeyInput;
  readonly validUntil: number;
}

/** Algorithms the verifier accepts (jsonwebtoken's asymmetric and HMAC families). */
export const ALGORITHMS: ReadonlySet<string> = new Set([
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512',
]);

/** Why an algorithm that is not in {@link ALGORITHMS} is refused. */
export function unsupportedAlgorithm(alg: unknown): string {
  if (alg === 'EdDSA' || alg === 'Ed25519' || alg === 'Ed448') {
    return `"${String(alg)}" is not supported: jsonwebtoken, which verifies every token here, has no EdDSA. ` +
      'Have the provider sign access tokens with ES256, PS256 or RS256 (see docs/tokens.md).';
  }
  if (typeof alg === 'string' && alg.toLowerCase() === 'none') return '"none" is never accepted: tokens must be signed.';
  return `"${String(alg)}" is not supported (${[...ALGORITHMS].join(', ')})`;
}

const MIN_HMAC_BYTES = 32;
const PEM_HEADER = /-----BEGIN [A-Z0-9 ]+-----/;

/** Whether a key is an HMAC secret or a public/private key (PEM text counts as the latter). */
export function keyFamily(input: KeyInput): 'hmac' | 'asymmetric' {
  if (input instanceof KeyObject) return input.type === 'secret' ? 'hmac' : 'asymmetric';
  const text = typeof input === 'string' ? input : Buffer.isBuffer(input) ? input.toString('latin1') : '';
  return PEM_HEADER.test(text) ? 'asymmetric' : 'hmac';
}

/** Turns a key into a `KeyObject` of the right kind, or throws a TypeError. */
export function toKeyObject(input: KeyInput, family: 'hmac' | 'asymmetric', label: string): KeyObject {
  if (family === 'hmac') {
    let key: KeyObject;
    if (input instanceof KeyObject) key = input;
    else if (typeof input === 'string' || Buffer.isBuffer(input)) {
      key = createSecretKey(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
    } else throw new TypeError(`${label} must be a string, a Buffer or a KeyObject`);
    if (key.type !== 'secret') throw new TypeError(`${label} must be a secret key for HMAC algorithms`);
    if (!(input instanceof KeyObject) && keyFamily(input) !== 'hmac') {
      throw new TypeError(
        `${label} is a PEM key, not an HMAC secret: with it anyone holding the public key could sign tokens. ` +
          "Use it with algorithms ['RS256'] (or PS/ES), or give a random secret for HMAC.",
      );
    }
    const bytes = key.symmetricKeySize ?? 0;
    if (bytes < MIN_HMAC_BYTES) {
      throw new TypeError(
        `${label} is ${bytes} bytes long; HMAC secrets must be at least ${MIN_HMAC_BYTES} bytes ` +
          '(generate one with `node -e "console.log(require(\'crypto\').randomBytes(48).toString(\'base64url\'))"`)',
      );
    }
    return key;
  }
  if (input instanceof KeyObject) {
    if (input.type === 'secret') throw new TypeError(`${label} is a secret key, but the algorithms need a public key`);
    return input.type === 'private' ? createPublicKey(input) : input;
  }
  if (typeof input !== 'string' && !Buffer.isBuffer(input)) {
    throw new TypeError(`${label} must be a PEM string, a Buffer or a KeyObject`);
  }
  try {
    return createPublicKey(input);
  } catch (cause) {
    throw new TypeError(`${label} is not a valid PEM public key (or certificate) for the algorithms given`, { cause });
  }
}

/** Whether jsonwebtoken rejected the token because this key did not sign it (another key may have). */
export function isWrongKey(error: unknown): boolean {
  return error instanceof jwt.JsonWebTokenError && !(error instanceof jwt.TokenExpiredError) &&
    !(error instanceof jwt.NotBeforeError) && error.message === 'invalid signature';
}

/** Maps a jsonwebtoken error to the {@link AuthError} the client gets. */
export function mapJwtError(error: unknown): AuthError {
  if (error instanceof jwt.TokenExpiredError) {
    return new TokenExpiredError(
      `The token expired at ${error.expiredAt.toISOString()}. Get a new token and retry.`,
      { cause: error },
    );
  }
  if (error instanceof jwt.NotBeforeError) {
    return new TokenNotActiveError(`The token is not valid before ${error.date.toISOString()}.`, { cause: error });
  }
  const reason = error instanceof jwt.JsonWebTokenError ? error.message : 'verification failed';
  return new InvalidTokenError(`The token was rejected: ${reason}.`, { cause: error });
}

/**
 * The error for a key from `getKey` that can never verify (too short, not a
 * key): a configuration error (500, no retry), told to the operator once per
 * cause with the fix; the client's message says nothing of the key.
 */
export function misconfiguredKey(cause: unknown): KeyMisconfiguredError {
  const why = cause instanceof Error ? cause.message : String(cause);
  warnOnce(
    'KUC_KEY_MISCONFIGURED',
    `options.getKey (or the options.secret function) returned a key that can never verify a token: ${why}. ` +
      'Every request whose token needs this key is answered 500 key_misconfigured (without Retry-After) until the key source is fixed.',
    `KUC_KEY_MISCONFIGURED:${why}`,
  );
  return new KeyMisconfiguredError(
    'The server cannot verify this token: its key is misconfigured on the server (a configuration error, not an outage; retrying will not help).',
    { cause },
  );
}
