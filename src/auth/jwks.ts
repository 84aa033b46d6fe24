/**
 * Key rotation through a JWKS endpoint, with jwks-rsa: a `getKey` for
 * {@link userContext} that picks up a new `kid` on first sight, caches known
 * keys, rate-limits refetches, and tells an unknown key (→ 401) from a key
 * server that cannot be reached (→ 503 `key_unavailable`).
 *
 * ```ts
 * app.use(userContext({
 *   algorithms: ['RS256'],
 *   getKey: jwksKeyResolver({ jwksUri: 'https://issuer.example/.well-known/jwks.json' }),
 *   issuer: 'https://issuer.example/', audience: 'my-api',
 * }));
 * ```
 *
 * @module
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import jwksRsa from 'jwks-rsa';
import type { GetKey } from './token.js';

/** Options of {@link jwksKeyResolver}. */
export interface JwksKeyResolverOptions {
  /** URL of the JWKS document (`http:` or `https:`). Required. */
  jwksUri: string;
  /**
   * How long a fetched key is trusted without refetching, in ms. A key
   * removed from the JWKS keeps working this long.
   * @default 600_000 (10 minutes)
   */
  cacheMaxAge?: number;
  /**
   * Most keys cached.
   * @default 16
   */
  cacheMaxEntries?: number;
  /**
   * Extra time (ms) a cached key may still be served when its `cacheMaxAge`
   * is over but the JWKS endpoint cannot be reached. `0` turns it off.
   * @default 0
   */
  cacheMaxAgeFallback?: number;
  /**
   * Most JWKS fetches per minute (each unknown `kid` costs one). Past it, an
   * unknown `kid` is rejected (401) without fetching.
   * @default 10
   */
  jwksRequestsPerMinute?: number;
  /**
   * Timeout of one JWKS fetch, in ms.
   * @default 5_000
   */
  timeout?: number;
  /**
   * Longest `kid` looked up; longer or non-string ones are unknown keys.
   * @default 256
   */
  maxKidLength?: number;
  /**
   * Agent for the JWKS requests (proxies, custom CAs).
   * @default Node's global agent
   */
  requestAgent?: HttpAgent | HttpsAgent;
  /**
   * Extra headers sent with the JWKS requests.
   * @default {}
   */
  requestHeaders?: Record<string, string>;
}

/** Errors of jwks-rsa that mean "this token's key does not exist", not "the key server is down". */
const UNKNOWN_KEY_ERRORS = new Set(['SigningKeyNotFoundError', 'JwksRateLimitError']);

/**
 * Returns a `getKey` that resolves a token's `kid` against a JWKS endpoint.
 * It resolves `null` for a key the endpoint does not have (and once the
 * refetch budget of the minute is spent), and throws when the endpoint cannot
 * be reached or answers garbage, which the middleware turns into
 * 503 `key_unavailable` with `Retry-After`. Headers such as `jku`, `x5u`,
 * `jwk` and `x5c` are never read: keys come from `jwksUri` only.
 */
export function jwksKeyResolver(options: JwksKeyResolverOptions): GetKey {
  if (options === null || typeof options !== 'object') {
    throw new TypeError("jwksKeyResolver(options): options is required, e.g. { jwksUri: 'https://…/jwks.json' }");
  }
  const {
    jwksUri,
    cacheMaxAge = 600_000,
    cacheMaxEntries = 16,
    cacheMaxAgeFallback = 0,
    jwksRequestsPerMinute = 10,
    timeout = 5_000,
    maxKidLength = 256,
    requestAgent,
    requestHeaders,
  } = options;
  let url: URL;
  try {
    url = new URL(jwksUri);
  } catch {
    throw new TypeError(`options.jwksUri must be an absolute http(s) URL, got ${JSON.stringify(jwksUri)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError(`options.jwksUri must use http: or https:, got ${url.protocol}`);
  }
  positive('cacheMaxAge', cacheMaxAge);
  positive('timeout', timeout);
  positive('jwksRequestsPerMinute', jwksRequestsPerMinute);
  if (!Number.isInteger(cacheMaxEntries) || cacheMaxEntries < 1) throw new TypeError('options.cacheMaxEntries must be a positive integer');
  if (!Number.isInteger(maxKidLength) || maxKidLength < 1) throw new TypeError('options.maxKidLength must be a positive integer');
  if (!Number.isFinite(cacheMaxAgeFallback) || cacheMaxAgeFallback < 0) {
    throw new TypeError('options.cacheMaxAgeFallback must be a number of milliseconds >= 0');
  }

  const client = new jwksRsa.JwksClient({
    jwksUri: url.href,
    cache: true,
    cacheMaxAge,
    cacheMaxEntries,
    ...(cacheMaxAgeFallback > 0 ? { cacheMaxAgeFallback } : {}),
    rateLimit: true,
    jwksRequestsPerMinute,
    timeout,
    ...(requestAgent !== undefined ? { requestAgent } : {}),
    ...(requestHeaders !== undefined ? { requestHeaders } : {}),
  });
  const where = `${url.origin}${url.pathname}`;

  return async function getJwksKey(header): Promise<string | null> {
    const kid: unknown = header.kid;
    if (kid !== undefined && (typeof kid !== 'string' || kid === '' || kid.length > maxKidLength)) return null;
    try {
      const key = await client.getSigningKey(kid);
      return key.getPublicKey();
    } catch (error) {
      if (error instanceof Error && UNKNOWN_KEY_ERRORS.has(error.name)) return null;
      const reason = error instanceof Error ? error.message : String((error as { errorMsg?: unknown })?.errorMsg ?? error);
      throw new Error(`The JWKS endpoint ${where} could not be read: ${reason}`, { cause: error });
    }
  };
}

function positive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`options.${name} must be a positive number`);
}
