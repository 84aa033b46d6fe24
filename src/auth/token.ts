/**
 * JWT verification with jsonwebtoken: keys turned into `KeyObject`s once,
 * explicit algorithms, a bounded cache of verified tokens that never
 * outlives a token's `exp`, and every failure mapped to an {@link AuthError}.
 *
 * @module
 */
import { KeyObject, createPublicKey, createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Algorithm, JwtHeader, JwtPayload, VerifyOptions } from 'jsonwebtoken';
import { LRUCache } from 'lru-cache';
import ms from 'ms';
import {
  AuthError,
  InvalidSubjectError,
  InvalidTokenError,
  KeyUnavailableError,
  TokenExpiredError,
  TokenNotActiveError,
  UserContextError,
} from '../errors.js';
import type { ContextEvents } from '../store/events.js';

/** A key as apps hold it: a secret, a PEM string/Buffer or a `KeyObject`. */
export type KeyInput = string | Buffer | KeyObject;

/** Resolves the key of a token from its header (key rotation, JWKS). */
export type GetKey = (
  header: Readonly<JwtHeader>,
  claims: Readonly<JwtPayload>,
) => KeyInput | null | undefined | Promise<KeyInput | null | undefined>;

/** Options of token verification. */
export interface TokenOptions {
  /**
   * Accepted algorithms. Required: there is no default, and `none` is refused.
   */
  algorithms: readonly Algorithm[];
  /**
   * HMAC secret (at least 32 bytes) or public key (PEM or `KeyObject`);
   * converted to a `KeyObject` once. Give this or `getKey`.
   * @default undefined
   */
  secret?: KeyInput;
  /**
   * Resolves the key per token (e.g. by `kid`). Return `null` for an unknown
   * key (→ 401), throw when no key can be had now (→ 503).
   * @default undefined
   */
  getKey?: GetKey;
  /** Accepted `iss` values. @default undefined (not checked) */
  issuer?: string | readonly string[];
  /** Accepted `aud` values. @default undefined (not checked) */
  audience?: string | RegExp | readonly (string | RegExp)[];
  /** Seconds of clock skew allowed on `exp` / `nbf`. @default 0 */
  clockTolerance?: number;
  /** Oldest accepted `iat`, e.g. `'12h'` or seconds. @default undefined */
  maxAge?: string | number;
  /**
   * Reject tokens without `exp`. Turning this off lets a leaked token live
   * forever.
   * @default true
   */
  requireExp?: boolean;
  /**
   * Claim holding the user id.
   * @default 'sub'
   */
  subjectClaim?: string;
  /**
   * Cache of verified tokens (by token string). An entry never outlives the
   * token's `exp` nor `maxTtl` ms; only tokens that passed every check are
   * cached. `false` verifies every request.
   * @default { max: 10_000, maxTtl: 300_000 }
   */
  tokenCache?: false | { max?: number; maxTtl?: number };
  /**
   * Longest token accepted, in characters.
   * @default 8192
   */
  maxTokenLength?: number;
}

/** A token that passed every check. */
export interface VerifiedToken {
  readonly claims: Readonly<JwtPayload>;
  readonly userUuid: string;
  /** `exp` in ms since the epoch, or `Infinity` when the token has none. */
  readonly expiresAt: number;
}

const ALGORITHMS = new Set<string>([
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512',
]);
const MIN_HMAC_BYTES = 32;
const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Verifies tokens; see {@link TokenOptions}. */
export class TokenVerifier {
  readonly #algorithms: Algorithm[];
  readonly #key: KeyObject | undefined;
  readonly #getKey: GetKey | undefined;
  readonly #keyFamily: 'hmac' | 'asymmetric' | 'mixed';
  readonly #verifyOptions: VerifyOptions;
  readonly #requireExp: boolean;
  readonly #subjectClaim: string;
  readonly #maxTokenLength: number;
  readonly #parseUserId: (value: unknown) => string;
  readonly #cache: LRUCache<string, CachedToken> | undefined;
  /** `maxAge` in ms, when set: a cached token is also dropped at `iat + maxAge`. */
  readonly #maxAgeMs: number | undefined;
  readonly #maxTtl: number;
  readonly #resolvedKeys = new LRUCache<string | Buffer, KeyObject>({ max: 64 });
  readonly #events: ContextEvents | undefined;

  /** `events` is told of token cache hits and misses. */
  constructor(options: TokenOptions, parseUserId: (value: unknown) => string, events?: ContextEvents) {
    const { algorithms } = options;
    if (!Array.isArray(algorithms) || algorithms.length === 0) {
      throw new TypeError("options.algorithms is required, e.g. ['HS256'] or ['RS256']; it has no default");
    }
    for (const alg of algorithms) {
      if (!ALGORITHMS.has(alg)) {
        throw new TypeError(`options.algorithms: "${String(alg)}" is not supported (${[...ALGORITHMS].join(', ')})`);
      }
    }
    this.#algorithms = [...algorithms];
    const hmac = algorithms.filter((a) => a.startsWith('HS')).length;
    this.#keyFamily = hmac === algorithms.length ? 'hmac' : hmac === 0 ? 'asymmetric' : 'mixed';
    if ((options.secret === undefined) === (options.getKey === undefined)) {
      throw new TypeError('give exactly one of options.secret (a key) and options.getKey (a key resolver)');
    }
    if (options.getKey !== undefined && typeof options.getKey !== 'function') {
      throw new TypeError('options.getKey must be a function (header, claims) => key');
    }
    if (options.secret !== undefined) {
      if (this.#keyFamily === 'mixed') {
        throw new TypeError('options.algorithms mixes HMAC and public-key algorithms, which one options.secret cannot serve');
      }
      this.#key = toKeyObject(options.secret, this.#keyFamily, 'options.secret');
    }
    this.#getKey = options.getKey;
    const clockTolerance = options.clockTolerance ?? 0;
    if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
      throw new TypeError('options.clockTolerance must be a number of seconds >= 0');
    }
    this.#verifyOptions = {
      algorithms: this.#algorithms,
      clockTolerance,
      ...(options.issuer !== undefined ? { issuer: toIssuer(options.issuer) } : {}),
      ...(options.audience !== undefined ? { audience: toAudience(options.audience) } : {}),
      ...(options.maxAge !== undefined ? { maxAge: options.maxAge } : {}),
    };
    this.#maxAgeMs = maxAgeMs(options.maxAge);
    this.#requireExp = options.requireExp ?? true;
    this.#subjectClaim = options.subjectClaim ?? 'sub';
    if (typeof this.#subjectClaim !== 'string' || this.#subjectClaim === '') {
      throw new TypeError('options.subjectClaim must be a non-empty string');
    }
    this.#maxTokenLength = options.maxTokenLength ?? 8192;
    if (!Number.isInteger(this.#maxTokenLength) || this.#maxTokenLength < 16) {
      throw new TypeError('options.maxTokenLength must be an integer >= 16');
    }
    this.#parseUserId = parseUserId;
    this.#events = events;
    const cache = options.tokenCache ?? {};
    if (cache === false) {
      this.#cache = undefined;
      this.#maxTtl = 0;
    } else {
      const { max = 10_000, maxTtl = 300_000 } = cache;
      if (!Number.isInteger(max) || max < 1) throw new TypeError('options.tokenCache.max must be a positive integer');
      if (!Number.isFinite(maxTtl) || maxTtl < 1) throw new TypeError('options.tokenCache.maxTtl must be a positive number of ms');
      this.#maxTtl = maxTtl;
      // Size-bounded only: each entry carries its own deadline, checked with
      // one Date.now() per hit (no lru-cache TTL bookkeeping on the hot path).
      this.#cache = new LRUCache<string, CachedToken>({ max });
    }
  }

  /** Verified tokens currently cached. */
  get cacheSize(): number {
    return this.#cache?.size ?? 0;
  }

  /**
   * Verifies a token, from the cache when possible. Resolves to the verified
   * token or rejects with an {@link AuthError}.
   */
  verify(token: string): VerifiedToken | Promise<VerifiedToken> {
    const cache = this.#cache;
    if (cache !== undefined) {
      const hit = cache.get(token);
      // `expired`: the token was cached but is past its exp / maxAge (an entry
      // past tokenCache.maxTtl counts as absent, as lru-cache's TTL had it).
      let expired = false;
      if (hit !== undefined) {
        // One clock read per hit: the entry carries its own deadlines.
        const now = Date.now();
        const fresh = now - hit.cachedAt <= hit.ttl;
        if (fresh && hit.validUntil > now) {
          if (this.#events?.listening) this.#events.emit('tokenCacheHit', { userUuid: hit.verified.userUuid });
          return hit.verified;
        }
        cache.delete(token);
        expired = fresh;
      }
      if (this.#events?.listening) this.#events.emit('tokenCacheMiss', { expired });
    }
    if (token.length > this.#maxTokenLength) {
      throw new InvalidTokenError(`The token is longer than ${this.#maxTokenLength} characters.`);
    }
    if (!TOKEN_SHAPE.test(token)) {
      throw new InvalidTokenError('The token is not a JWT (three base64url segments separated by dots).');
    }
    if (this.#key !== undefined) return this.#finish(token, this.#key);
    return this.#verifyWithResolver(token);
  }

  async #verifyWithResolver(token: string): Promise<VerifiedToken> {
    const decoded = jwt.decode(token, { complete: true });
    if (decoded === null || typeof decoded.payload !== 'object' || decoded.payload === null) {
      throw new InvalidTokenError('The token could not be decoded: its header or payload is not a JSON object.');
    }
    if (!this.#algorithms.includes(decoded.header.alg as Algorithm)) {
      throw new InvalidTokenError(`The token's algorithm "${String(decoded.header.alg)}" is not accepted.`);
    }
    let input: KeyInput | null | undefined;
    try {
      input = await this.#getKey!(decoded.header, decoded.payload);
    } catch (cause) {
      throw new KeyUnavailableError('No key to verify the token can be obtained right now; retry later.', { cause });
    }
    if (input == null) {
      throw new InvalidTokenError(`No key is known for this token (kid ${JSON.stringify(decoded.header.kid ?? null)}).`);
    }
    const family = decoded.header.alg.startsWith('HS') ? 'hmac' : 'asymmetric';
    if (keyFamily(input) !== family) {
      // Algorithm confusion: e.g. HS256 "signed" with an RSA public key used as an HMAC secret.
      throw new InvalidTokenError(
        `The token's algorithm "${decoded.header.alg}" does not fit the kind of key its kid names.`,
      );
    }
    let key: KeyObject;
    try {
      key = this.#resolveKey(input, family);
    } catch (cause) {
      throw new KeyUnavailableError('options.getKey returned a key that cannot be used.', { cause });
    }
    return this.#finish(token, key);
  }

  #resolveKey(input: KeyInput, family: 'hmac' | 'asymmetric'): KeyObject {
    if (input instanceof KeyObject) return toKeyObject(input, family, 'getKey() result');
    let key = this.#resolvedKeys.get(input);
    if (key === undefined) {
      key = toKeyObject(input, family, 'getKey() result');
      this.#resolvedKeys.set(input, key);
    }
    return key;
  }

  #finish(token: string, key: KeyObject): VerifiedToken {
    let claims: string | JwtPayload;
    try {
      claims = jwt.verify(token, key, this.#verifyOptions);
    } catch (error) {
      throw mapJwtError(error);
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw new InvalidTokenError('The token payload is not a JSON object.');
    }
    let expiresAt = Infinity;
    if (typeof claims.exp === 'number') expiresAt = claims.exp * 1000;
    else if (this.#requireExp) {
      throw new InvalidTokenError('The token has no "exp" claim; tokens must expire. Issue it with an expiry.');
    }
    const subject = Object.prototype.hasOwnProperty.call(claims, this.#subjectClaim)
      ? (claims as Record<string, unknown>)[this.#subjectClaim]
      : undefined;
    if (subject === undefined) {
      throw new InvalidSubjectError(`The token has no "${this.#subjectClaim}" claim naming the user.`);
    }
    let userUuid: string;
    try {
      userUuid = this.#parseUserId(subject);
    } catch (cause) {
      const detail = cause instanceof UserContextError ? ` ${cause.message}` : '';
      throw new InvalidSubjectError(`The token's "${this.#subjectClaim}" claim is not a valid user id.${detail}`, { cause });
    }
    const verified: VerifiedToken = Object.freeze({ claims: Object.freeze(claims), userUuid, expiresAt });
    if (this.#cache !== undefined) {
      let validUntil = expiresAt;
      if (this.#maxAgeMs !== undefined && typeof claims.iat === 'number') {
        validUntil = Math.min(validUntil, claims.iat * 1000 + this.#maxAgeMs);
      }
      const cachedAt = Date.now();
      const ttl = Math.min(this.#maxTtl, validUntil - cachedAt);
      if (ttl >= 1) this.#cache.set(token, { verified, validUntil, cachedAt, ttl: Math.floor(ttl) });
    }
    return verified;
  }
}

/** A cache entry: the verified token and when it stops being servable. */
interface CachedToken {
  readonly verified: VerifiedToken;
  /** ms since the epoch: `exp`, or `iat + maxAge` when that is earlier. */
  readonly validUntil: number;
  /** When it was cached; the entry is stale once `Date.now() - cachedAt > ttl` (ttl ≤ tokenCache.maxTtl). */
  readonly cachedAt: number;
  readonly ttl: number;
}

/** `maxAge` (seconds or a span such as `'12h'`, as jsonwebtoken reads it) in ms. */
function maxAgeMs(maxAge: string | number | undefined): number | undefined {
  if (maxAge === undefined) return undefined;
  const value = typeof maxAge === 'number' ? maxAge * 1000 : typeof maxAge === 'string' ? ms(maxAge as ms.StringValue) : undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`options.maxAge must be a number of seconds or a time span such as '12h', got ${JSON.stringify(maxAge)}`);
  }
  return value;
}

function mapJwtError(error: unknown): AuthError {
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

const PEM_HEADER = /-----BEGIN [A-Z0-9 ]+-----/;

/** Whether a key is an HMAC secret or a public/private key (PEM text counts as the latter). */
function keyFamily(input: KeyInput): 'hmac' | 'asymmetric' {
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

function toIssuer(issuer: string | readonly string[]): string | [string, ...string[]] {
  if (typeof issuer === 'string') return issuer;
  if (!Array.isArray(issuer) || issuer.length === 0) throw new TypeError('options.issuer must be a string or a non-empty array');
  return [...issuer] as [string, ...string[]];
}

function toAudience(
  audience: string | RegExp | readonly (string | RegExp)[],
): string | RegExp | [string | RegExp, ...(string | RegExp)[]] {
  if (!Array.isArray(audience)) return audience as string | RegExp;
  if (audience.length === 0) throw new TypeError('options.audience must not be an empty array');
  return [...audience] as [string | RegExp, ...(string | RegExp)[]];
}
