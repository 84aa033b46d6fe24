/**
 * JWT verification with jsonwebtoken: keys turned into `KeyObject`s once,
 * explicit algorithms, a bounded cache of verified tokens that never
 * outlives a token's `exp` (nor its key's lease), and every failure mapped to
 * an {@link AuthError}.
 *
 * @module
 */
import { KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Algorithm, Jwt, JwtHeader, JwtPayload, VerifyOptions } from 'jsonwebtoken';
import { LRUCache } from 'lru-cache';
import ms from 'ms';
import {
  AuthError,
  InvalidTokenError,
  InvalidTokenTypeError,
  KeyUnavailableError,
} from '../errors.js';
import type { ContextEvents } from '../store/events.js';
import { subjectOf } from './user-id.js';
import { freezeClaims } from './claims.js';
import {
  ALGORITHMS, isWrongKey, keyFamily, mapJwtError, misconfiguredKey, toKeyObject, unsupportedAlgorithm, type KeyInput, type KeyLease,
} from './keys.js';

export type { KeyInput, KeyLease } from './keys.js';

/**
 * Resolves the key of a token from its header (key rotation, JWKS). May
 * return several keys (tried in order) or a {@link KeyLease}.
 */
export type GetKey = (
  header: Readonly<JwtHeader>,
  claims: Readonly<JwtPayload>,
) => KeyResult | Promise<KeyResult>;

/** What a {@link GetKey} may return; `null`/`undefined` means "no such key" (401). */
export type KeyResult = KeyInput | readonly KeyInput[] | KeyLease | null | undefined;

/** Decides whether a verified token is an access token (see `requireAccessTokenType`). */
export type AccessTokenCheck = (header: Readonly<JwtHeader>, claims: Readonly<JwtPayload>) => boolean;

/** Options of token verification. */
export interface TokenOptions {
  /**
   * Accepted algorithms. Required: there is no default, and `none` is refused.
   * EdDSA is not available (jsonwebtoken has none; see docs/tokens.md).
   */
  algorithms: readonly Algorithm[];
  /**
   * HMAC secret (at least 32 bytes) or public key (PEM or `KeyObject`);
   * converted to a `KeyObject` once. An array is tried in order (rolling
   * secrets without `kid`); a function is a key resolver, as in koa-jwt
   * (same as `getKey`). Give this or `getKey`.
   * @default undefined
   */
  secret?: KeyInput | readonly KeyInput[] | GetKey;
  /**
   * Resolves the key per token (e.g. by `kid`). Return `null` for an unknown
   * key (→ 401), throw when no key can be had now (→ 503). A key that can
   * never verify (an HMAC secret under 32 bytes, a bad PEM) is a server
   * configuration error (→ 500 `key_misconfigured`, one process warning).
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
   * Accept a subject claim that is a non-negative safe integer (`{ id: 123 }`)
   * and use its decimal string (`'123'`) as the user id, which the store's
   * `userId` policy must then accept. Other non-string subjects are refused.
   * @default false
   */
  numericSubject?: boolean;
  /**
   * RFC 9068: accept only access tokens. `true` requires the header
   * `typ: at+jwt` (or `application/at+jwt`), which refuses ID tokens whose
   * audience happens to be this API. A function decides for providers
   * that do not set it (e.g. Keycloak: `(h, c) => c.typ === 'Bearer'`).
   * @default false
   */
  requireAccessTokenType?: boolean | AccessTokenCheck;
  /**
   * Cache of verified tokens (by token string). An entry never outlives the
   * token's `exp` nor `maxTtl` ms, nor the lease of the key that verified it
   * (a key removed from a JWKS); only tokens that passed every check are
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
  /** The OAuth client the token was issued to: `client_id` (RFC 9068), else `azp`. */
  readonly clientId: string | undefined;
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const AT_JWT = /^(application\/)?at\+jwt$/i;

/** Verifies tokens; see {@link TokenOptions}. */
export class TokenVerifier {
  readonly #algorithms: Algorithm[];
  readonly #keys: readonly KeyObject[] | undefined;
  readonly #getKey: GetKey | undefined;
  readonly #keyFamily: 'hmac' | 'asymmetric' | 'mixed';
  readonly #verifyOptions: VerifyOptions & { complete: true };
  readonly #requireExp: boolean;
  readonly #subjectClaim: string;
  readonly #numericSubject: boolean;
  readonly #accessTokenCheck: AccessTokenCheck | undefined;
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
      if (!ALGORITHMS.has(alg)) throw new TypeError(`options.algorithms: ${unsupportedAlgorithm(alg)}`);
    }
    this.#algorithms = [...algorithms];
    const hmac = algorithms.filter((a) => a.startsWith('HS')).length;
    this.#keyFamily = hmac === algorithms.length ? 'hmac' : hmac === 0 ? 'asymmetric' : 'mixed';
    const secretResolver = typeof options.secret === 'function' ? options.secret : undefined;
    if ((options.secret === undefined) === (options.getKey === undefined)) {
      throw new TypeError('give exactly one of options.secret (a key, keys, or a key function) and options.getKey (a key resolver)');
    }
    if (options.getKey !== undefined && typeof options.getKey !== 'function') {
      throw new TypeError('options.getKey must be a function (header, claims) => key');
    }
    if (options.secret !== undefined && secretResolver === undefined) {
      if (this.#keyFamily === 'mixed') {
        throw new TypeError('options.algorithms mixes HMAC and public-key algorithms, which one options.secret cannot serve');
      }
      const family = this.#keyFamily;
      const secrets = options.secret as KeyInput | readonly KeyInput[];
      if (Array.isArray(secrets)) {
        if (secrets.length === 0) throw new TypeError('options.secret must not be an empty array');
        this.#keys = secrets.map((s: KeyInput, i) => toKeyObject(s, family, `options.secret[${i}]`));
      } else {
        this.#keys = [toKeyObject(secrets as KeyInput, family, 'options.secret')];
      }
    }
    this.#getKey = options.getKey ?? secretResolver;
    const clockTolerance = options.clockTolerance ?? 0;
    if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
      throw new TypeError('options.clockTolerance must be a number of seconds >= 0');
    }
    this.#verifyOptions = {
      algorithms: this.#algorithms,
      clockTolerance,
      complete: true,
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
    this.#numericSubject = options.numericSubject ?? false;
    if (typeof this.#numericSubject !== 'boolean') throw new TypeError('options.numericSubject must be a boolean');
    const typ = options.requireAccessTokenType ?? false;
    if (typeof typ !== 'boolean' && typeof typ !== 'function') {
      throw new TypeError('options.requireAccessTokenType must be a boolean or a function (header, claims) => boolean');
    }
    this.#accessTokenCheck = typ === true ? (header) => typeof header.typ === 'string' && AT_JWT.test(header.typ) : typ || undefined;
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
      const key = cacheKey(token);
      let hit = cache.get(key);
      // The key is only the signature's tail: the entry is this token's only
      // if the whole token is equal. Another token with the same tail (never
      // a validly signed one in practice) is simply not cached: it is
      // verified in full, and it does not evict the entry it collided with.
      if (hit !== undefined && hit.token !== token) hit = undefined;
      // `expired`: the token was cached but is past its exp / maxAge (an entry
      // past tokenCache.maxTtl counts as absent, as lru-cache's TTL had it).
      let expired = false;
      if (hit !== undefined) {
        // One clock read per hit: the entry carries its own deadlines.
        const now = Date.now();
        const fresh = now - hit.cachedAt <= hit.ttl && (hit.lease === undefined || hit.lease.validUntil > now);
        if (fresh && hit.validUntil > now) {
          if (this.#events?.listening) this.#events.emit('tokenCacheHit', { userUuid: hit.verified.userUuid });
          return hit.verified;
        }
        cache.delete(key);
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
    if (this.#keys !== undefined) return this.#finish(token, this.#keys, undefined);
    return this.#verifyWithResolver(token);
  }

  async #verifyWithResolver(token: string): Promise<VerifiedToken> {
    const decoded = jwt.decode(token, { complete: true });
    if (decoded === null || typeof decoded.payload !== 'object' || decoded.payload === null) {
      throw new InvalidTokenError('The token could not be decoded: its header or payload is not a JSON object.');
    }
    const alg = decoded.header.alg as string;
    if (!this.#algorithms.includes(alg as Algorithm)) {
      const why = ALGORITHMS.has(alg) ? 'is not accepted here' : unsupportedAlgorithm(alg);
      throw new InvalidTokenError(`The token's algorithm "${String(alg)}" ${ALGORITHMS.has(alg) ? why : `is refused: ${why}`}.`);
    }
    let result: KeyResult;
    try {
      result = await this.#getKey!(decoded.header, decoded.payload);
    } catch (cause) {
      if (cause instanceof AuthError) throw cause;
      throw new KeyUnavailableError('No key to verify the token can be obtained right now; retry later.', { cause });
    }
    let lease: KeyLease | undefined;
    if (isLease(result)) {
      lease = result;
      result = result.key;
    }
    const inputs: readonly KeyInput[] = result == null ? [] : Array.isArray(result) ? result : [result as KeyInput];
    if (inputs.length === 0) {
      throw new InvalidTokenError(`No key is known for this token (kid ${JSON.stringify(decoded.header.kid ?? null)}).`);
    }
    const family = alg.startsWith('HS') ? 'hmac' : 'asymmetric';
    const keys: KeyObject[] = [];
    for (const input of inputs) {
      // Algorithm confusion: e.g. HS256 "signed" with an RSA public key used as an HMAC secret.
      if (keyFamily(input) !== family) continue;
      try {
        keys.push(this.#resolveKey(input, family));
      } catch (cause) {
        throw misconfiguredKey(cause);
      }
    }
    if (keys.length === 0) {
      throw new InvalidTokenError(`The token's algorithm "${alg}" does not fit the kind of key its kid names.`);
    }
    return this.#finish(token, keys, lease);
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

  /** Verifies with each key in order until one signed the token (rolling secrets). */
  #verifyWithKeys(token: string, keys: readonly KeyObject[]): Jwt {
    for (let i = 0; ; i++) {
      try {
        return jwt.verify(token, keys[i]!, this.#verifyOptions);
      } catch (error) {
        if (i + 1 < keys.length && isWrongKey(error)) continue;
        throw mapJwtError(error);
      }
    }
  }

  #finish(token: string, keys: readonly KeyObject[], lease: KeyLease | undefined): VerifiedToken {
    const { header, payload: claims } = this.#verifyWithKeys(token, keys);
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw new InvalidTokenError('The token payload is not a JSON object.');
    }
    if (this.#accessTokenCheck !== undefined && !this.#accessTokenCheck(header, claims)) {
      throw new InvalidTokenTypeError(
        `The token is not an access token (typ ${JSON.stringify(header.typ ?? null)}, expected "at+jwt" per RFC 9068); ` +
          'send an access token, not an ID token.',
      );
    }
    let expiresAt = Infinity;
    if (typeof claims.exp === 'number') expiresAt = claims.exp * 1000;
    else if (this.#requireExp) {
      throw new InvalidTokenError('The token has no "exp" claim; tokens must expire. Issue it with an expiry.');
    }
    const userUuid = this.#subjectOf(claims);
    const clientId = typeof claims['client_id'] === 'string' ? claims['client_id'] : typeof claims.azp === 'string' ? claims.azp : undefined;
    // Deep-frozen: the cache, the scope and every request share them. The
    // unfrozen twin that each request's own copy is made from is only worth
    // making when the claims are cached and so copied again and again.
    const verified: VerifiedToken = Object.freeze({ claims: freezeClaims(claims, this.#cache !== undefined), userUuid, expiresAt, clientId });
    if (this.#cache !== undefined) {
      let validUntil = expiresAt;
      if (this.#maxAgeMs !== undefined && typeof claims.iat === 'number') {
        validUntil = Math.min(validUntil, claims.iat * 1000 + this.#maxAgeMs);
      }
      const cachedAt = Date.now();
      const ttl = Math.min(this.#maxTtl, validUntil - cachedAt, lease === undefined ? Infinity : lease.validUntil - cachedAt);
      if (ttl >= 1) this.#cache.set(cacheKey(token), { token, verified, validUntil, cachedAt, ttl: Math.floor(ttl), lease });
    }
    return verified;
  }

  #subjectOf(claims: JwtPayload): string {
    return subjectOf(claims, this.#subjectClaim, this.#numericSubject, this.#parseUserId, 'token');
  }
}

function isLease(value: unknown): value is KeyLease {
  return typeof value === 'object' && value !== null && !(value instanceof KeyObject) && !Buffer.isBuffer(value) &&
    !Array.isArray(value) && 'validUntil' in value && 'key' in value;
}

/**
 * Characters of a token that key the cache: the end of its signature. A
 * request's token is a fresh string, so the key is hashed on every lookup;
 * hashing a few characters instead of the whole token (hundreds) is most of a
 * cache hit's cost. The entry holds the whole token and a hit requires it to
 * be equal, so the key only has to spread the entries, never to identify one.
 * 12, because V8 copies a slice shorter than 13 characters into a flat string,
 * while a longer one is a view on the token that is hashed one character at a
 * time: on Node 24 a lookup with its whole-token check took 90–100 ns with 12
 * characters, 140–165 ns with 24, 370–410 ns keyed by the whole token.
 */
const CACHE_KEY_LENGTH = 12;

function cacheKey(token: string): string {
  return token.length <= CACHE_KEY_LENGTH ? token : token.slice(-CACHE_KEY_LENGTH);
}

/** A cache entry: the verified token and when it stops being servable. */
interface CachedToken {
  /** The whole token: a lookup by {@link cacheKey} hits only when it is equal. */
  readonly token: string;
  readonly verified: VerifiedToken;
  /** ms since the epoch: `exp`, or `iat + maxAge` when that is earlier. */
  readonly validUntil: number;
  /** When it was cached; the entry is stale once `Date.now() - cachedAt > ttl` (ttl ≤ tokenCache.maxTtl). */
  readonly cachedAt: number;
  readonly ttl: number;
  /** The lease of the key that verified it, when the resolver gave one. */
  readonly lease: KeyLease | undefined;
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
