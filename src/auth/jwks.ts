/**
 * Key rotation through a JWKS endpoint: a `getKey` for {@link userContext}
 * that downloads the whole key set once per refresh (jwks-rsa fetches and
 * converts it), picks up a new `kid` on first sight, and keeps three cases
 * apart:
 * - a key the provider does not publish → `null` (401 `invalid_token`);
 * - a provider that cannot be reached → throws (503 `key_unavailable` with
 *   `Retry-After`), never 401, and a failed fetch never spends the refetch
 *   budget, so a valid token is accepted again within `retryAfterFailure` of
 *   the provider's return;
 * - a key removed from the set → its {@link KeyLease} ends, so tokens
 *   verified with it leave the token cache within `cacheMaxAge`.
 *
 * ```ts
 * app.use(userContext({
 *   algorithms: ['RS256'],
 *   getKey: jwksKeyResolver({ issuer: 'https://issuer.example' }), // OIDC discovery
 *   issuer: 'https://issuer.example', audience: 'my-api',
 * }));
 * ```
 *
 * @module
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import jwksRsa from 'jwks-rsa';
import { discoverOpenIdConfiguration, issuerUrl } from './discovery.js';
import type { KeyLease } from './keys.js';
import { checkOptionNames } from './options.js';
import type { GetKey } from './token.js';

/** Options of {@link jwksKeyResolver}. Give `jwksUri` or `issuer`. */
export interface JwksKeyResolverOptions {
  /** URL of the JWKS document (`http:` or `https:`). @default undefined (discovered from `issuer`) */
  jwksUri?: string;
  /**
   * Issuer URL: the JWKS URL is read from its OpenID Connect discovery
   * document (`<issuer>/.well-known/openid-configuration`, whose `issuer`
   * must match exactly) on first use.
   * @default undefined
   */
  issuer?: string;
  /**
   * How long a downloaded key set is trusted without downloading it again,
   * in ms. A key removed from the JWKS, and every token verified with it
   * and cached, keeps working at most this long.
   * @default 600_000 (10 minutes)
   */
  cacheMaxAge?: number;
  /**
   * Most keys kept from one key set (the rest are ignored).
   * @default 16
   */
  cacheMaxEntries?: number;
  /**
   * Extra time (ms) a key may still be served when its `cacheMaxAge` is over
   * but the endpoint cannot be reached. Tokens verified with such a key are
   * not cached. `0` turns it off.
   * @default 0
   */
  cacheMaxAgeFallback?: number;
  /**
   * Most downloads per minute (successful ones only: failed ones never
   * count). Past it, an unknown `kid` is rejected (401) without a download;
   * downloads because the set is older than `cacheMaxAge` are never refused.
   * @default 10
   */
  jwksRequestsPerMinute?: number;
  /**
   * After a failed download, how long (ms) requests that need the key set get
   * 503 at once (with this as `Retry-After`) before the next attempt.
   * @default 1_000
   */
  retryAfterFailure?: number;
  /**
   * Timeout of one download, in ms.
   * @default 5_000
   */
  timeout?: number;
  /**
   * Longest `kid` looked up; longer or non-string ones are unknown keys.
   * @default 256
   */
  maxKidLength?: number;
  /**
   * Agent for the requests (proxies, custom CAs).
   * @default Node's global agent
   */
  requestAgent?: HttpAgent | HttpsAgent;
  /**
   * Extra headers sent with the requests.
   * @default {}
   */
  requestHeaders?: Record<string, string>;
}

const OPTION_NAMES: readonly string[] = [
  'jwksUri', 'issuer', 'cacheMaxAge', 'cacheMaxEntries', 'cacheMaxAgeFallback', 'jwksRequestsPerMinute',
  'retryAfterFailure', 'timeout', 'maxKidLength', 'requestAgent', 'requestHeaders',
] satisfies (keyof JwksKeyResolverOptions)[];

/** A published key and how long it may be used without confirming it is still published. */
interface Lease extends KeyLease {
  readonly key: string;
  readonly alg: string | undefined;
  validUntil: number;
}

/** Thrown (as the cause of a 503) when the key set cannot be had; `retryAfter` is in seconds. */
class JwksUnavailableError extends Error {
  constructor(message: string, readonly retryAfter: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JwksUnavailableError';
  }
}

/**
 * Returns a `getKey` that resolves a token's `kid` against the provider's key
 * set. Headers such as `jku`, `x5u`, `jwk` and `x5c` are never read: keys come
 * from `jwksUri` (or the discovered one) only.
 */
export function jwksKeyResolver(options: JwksKeyResolverOptions): GetKey {
  if (options === null || typeof options !== 'object') {
    throw new TypeError("jwksKeyResolver(options): options is required, e.g. { issuer: 'https://…' } or { jwksUri: 'https://…/jwks.json' }");
  }
  checkOptionNames(options, OPTION_NAMES, 'jwksKeyResolver()');
  const {
    jwksUri, issuer, cacheMaxAge = 600_000, cacheMaxEntries = 16, cacheMaxAgeFallback = 0, jwksRequestsPerMinute = 10,
    retryAfterFailure = 1_000, timeout = 5_000, maxKidLength = 256, requestAgent, requestHeaders,
  } = options;
  if ((jwksUri === undefined) === (issuer === undefined)) {
    throw new TypeError('jwksKeyResolver() needs exactly one of options.jwksUri and options.issuer (OIDC discovery)');
  }
  const fixedUrl = jwksUri !== undefined ? issuerUrl(jwksUri, 'options.jwksUri').href : undefined;
  if (issuer !== undefined) issuerUrl(issuer);
  positive('cacheMaxAge', cacheMaxAge);
  positive('timeout', timeout);
  positive('jwksRequestsPerMinute', jwksRequestsPerMinute);
  positive('retryAfterFailure', retryAfterFailure);
  if (!Number.isInteger(cacheMaxEntries) || cacheMaxEntries < 1) throw new TypeError('options.cacheMaxEntries must be a positive integer');
  if (!Number.isInteger(maxKidLength) || maxKidLength < 1) throw new TypeError('options.maxKidLength must be a positive integer');
  if (!Number.isFinite(cacheMaxAgeFallback) || cacheMaxAgeFallback < 0) {
    throw new TypeError('options.cacheMaxAgeFallback must be a number of milliseconds >= 0');
  }
  const http = { timeout, ...(requestAgent !== undefined ? { requestAgent } : {}), ...(requestHeaders !== undefined ? { requestHeaders } : {}) };

  let client: jwksRsa.JwksClient | undefined;
  let where = fixedUrl ?? `the JWKS of ${String(issuer)}`;
  /** Keys of the last downloaded set, by kid ('' for a key without one). */
  let leases = new Map<string, Lease>();
  let fetchedAt = -Infinity;
  let failedAt = -Infinity;
  let lastFailure: unknown;
  let inflight: Promise<void> | undefined;
  /** When the successful downloads of the last minute happened (the budget of unknown kids). */
  const recentDownloads: number[] = [];

  async function jwksClient(): Promise<jwksRsa.JwksClient> {
    if (client !== undefined) return client;
    const uri = fixedUrl ?? (await discoverOpenIdConfiguration(issuer!, http)).jwks_uri;
    where = uri;
    client ??= new jwksRsa.JwksClient({ jwksUri: uri, cache: false, rateLimit: false, ...http });
    return client;
  }

  async function download(): Promise<void> {
    let keys: jwksRsa.SigningKey[];
    try {
      keys = await (await jwksClient()).getSigningKeys();
    } catch (error) {
      // A keep-alive socket to a provider that restarted since: retry once on a new one.
      if ((error as { code?: unknown }).code !== 'ECONNRESET') throw error;
      keys = await (await jwksClient()).getSigningKeys();
    }
    const now = Date.now();
    const next = new Map<string, Lease>();
    for (const signingKey of keys.slice(0, cacheMaxEntries)) {
      const kid = signingKey.kid ?? '';
      const pem = signingKey.getPublicKey();
      const alg = (signingKey as { alg?: string }).alg;
      const previous = leases.get(kid);
      const lease: Lease = previous !== undefined && previous.key === pem && previous.alg === alg ? previous : { key: pem, alg, validUntil: 0 };
      lease.validUntil = now + cacheMaxAge;
      next.set(kid, lease);
    }
    // A key no longer published ends its lease now: tokens cached with it are verified again.
    for (const [kid, lease] of leases) if (next.get(kid) !== lease) lease.validUntil = 0;
    leases = next;
    fetchedAt = now;
    recentDownloads.push(now);
  }

  /** Downloads the key set (one download at a time; a failure answers 503 for `retryAfterFailure`). */
  function refresh(): Promise<void> {
    const sinceFailure = Date.now() - failedAt;
    if (sinceFailure < retryAfterFailure) return Promise.reject(unavailable(lastFailure, retryAfterFailure - sinceFailure));
    inflight ??= download().then(
      () => {
        inflight = undefined;
      },
      (error: unknown) => {
        inflight = undefined;
        failedAt = Date.now();
        lastFailure = error;
        throw unavailable(error, retryAfterFailure);
      },
    );
    return inflight;
  }

  function unavailable(error: unknown, retryInMs: number): JwksUnavailableError {
    const reason = error instanceof Error ? error.message : String((error as { errorMsg?: unknown })?.errorMsg ?? error);
    return new JwksUnavailableError(`The key set at ${where} could not be read: ${reason}`, Math.max(1, Math.ceil(retryInMs / 1000)), { cause: error });
  }

  function find(kid: string | undefined): Lease | undefined {
    if (kid !== undefined) return leases.get(kid);
    // A token without kid names a key only when the set has exactly one.
    return leases.size === 1 ? leases.values().next().value : undefined;
  }

  /** Whether a download for an unknown kid fits the per-minute budget. */
  function mayRefreshForUnknownKid(now: number): boolean {
    while (recentDownloads.length > 0 && now - recentDownloads[0]! >= 60_000) recentDownloads.shift();
    return recentDownloads.length < jwksRequestsPerMinute;
  }

  return async function getJwksKey(header): Promise<KeyLease | null> {
    const kid: unknown = header.kid;
    if (kid !== undefined && (typeof kid !== 'string' || kid === '' || kid.length > maxKidLength)) return null;
    const now = Date.now();
    if (now - fetchedAt >= cacheMaxAge) {
      try {
        await refresh();
      } catch (error) {
        const stale = find(kid);
        if (stale !== undefined && Date.now() - fetchedAt < cacheMaxAge + cacheMaxAgeFallback) return fits(stale, header.alg);
        throw error;
      }
    }
    let lease = find(kid);
    if (lease === undefined && kid !== undefined && (inflight !== undefined || mayRefreshForUnknownKid(Date.now()))) {
      await refresh();
      lease = find(kid);
    }
    return lease === undefined ? null : fits(lease, header.alg);
  };
}

/** The lease, unless the key is published for another algorithm than the token's (RFC 8725 §3.1). */
function fits(lease: Lease, alg: unknown): Lease | null {
  return lease.alg === undefined || lease.alg === alg ? lease : null;
}

function positive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`options.${name} must be a positive number`);
}
