/**
 * Which near-cached contexts may answer a request without asking Redis, and
 * which Redis reads are recent enough to answer it.
 *
 * An entry is served from the near-cache only while the subscription is
 * confirmed and has been since the entry was read (same epoch), the entry
 * was read less than `revalidateInterval` ago, and, with `consistency:
 * 'strict'`, it is confirmed less than `maxStaleness` ago: by its own read,
 * or by the latest heartbeat round that came back through every node with no
 * invalidation missing (see confirmation.ts). Otherwise the request reads
 * Redis, and a read already in flight answers it only if it was sent within
 * the same bound before the request started (with `revalidateInterval: 0`,
 * only one sent after it started: every request is answered by a read that
 * began during it).
 *
 * @internal
 * @module
 */
import { LRUCache } from 'lru-cache';
import { ContextLoadError, ContextStoreUnavailableError, StoreClosedError } from '../errors.js';
import { warnOnce } from '../warn.js';
import { localNow } from './fence.js';
import type { Claims } from './persisted.js';
import type { RedisStoreStats } from './stats.js';
import type { Subscription } from './subscription.js';

/** What the near-cache knows about one user's entry. */
export interface Fresh {
  /** Logical time at which the load that validated the entry was sent. */
  tick: number;
  /** Subscription epoch at that time: a new subscription invalidates everything. */
  epoch: number;
  /** Local clock when that load was sent: the Redis state it returned is at least this recent. */
  checkedAt: number;
  /** When the Redis TTL was last refreshed by this instance. */
  touchedAt: number;
}

export interface FreshnessOptions {
  max: number;
  subscription: Subscription;
  revalidateInterval: number;
  /** `consistency: 'strict'`: the `maxStaleness` option; otherwise `Infinity`. */
  maxStaleness: number;
  /** `consistency: 'strict'`: never serve what Redis cannot confirm. */
  strict: boolean;
  stats: RedisStoreStats;
  /** Reads the user's context from Redis (or, when Redis has none, from `persistence.load`, given the claims) and installs it locally. */
  load: (userUuid: string, claims: Claims) => Promise<Fresh>;
  /** Whether the store holds a local generation of the user. */
  hasLocal: (userUuid: string) => boolean;
  /** Whether the store is closed. */
  closed: () => boolean;
}

export class Freshness {
  readonly #o: FreshnessOptions;
  readonly #fresh: LRUCache<string, Fresh>;
  /**
   * Users whose local generation an invalidation reported outdated, with the
   * logical time it arrived: never served from the near-cache when Redis
   * fails (503 instead); cleared by a Redis reply sent after that time.
   */
  readonly #outdated: LRUCache<string, number>;
  /** How long before a request a read it joins may have been sent. */
  readonly #readBound: number;

  constructor(options: FreshnessOptions) {
    this.#o = options;
    this.#readBound = Math.min(options.revalidateInterval, options.maxStaleness);
    this.#fresh = new LRUCache<string, Fresh>({
      max: options.max,
      // Deleting an entry while it loads (an invalidation) must not fail the
      // requests waiting for it: they get the result, which is not cached.
      ignoreFetchAbort: true,
      fetchMethod: (userUuid, _stale, { context }) => options.load(userUuid, context as Claims),
    });
    this.#outdated = new LRUCache<string, number>({ max: options.max });
  }

  /**
   * The near-cache entry if it may be served without asking Redis; with
   * `checkAge`, also within `revalidateInterval` and (strict) `maxStaleness`.
   */
  entry(userUuid: string, checkAge: boolean): Fresh | undefined {
    const { subscription, stats } = this.#o;
    if (!subscription.active) return undefined;
    const fresh = this.#fresh.get(userUuid);
    if (fresh === undefined || fresh.epoch !== subscription.epoch) return undefined;
    if (checkAge) {
      const now = localNow();
      if (now - fresh.checkedAt >= this.#o.revalidateInterval) {
        stats.revalidations++;
        return undefined;
      }
      if (now - Math.max(fresh.checkedAt, subscription.confirmedAt) >= this.#o.maxStaleness) {
        stats.strictReads++;
        return undefined;
      }
    }
    return this.#o.hasLocal(userUuid) ? fresh : undefined;
  }

  /**
   * Reads the user's context from Redis (one read in flight per user,
   * shared: it answers only if it was sent recently enough) and runs `then`
   * synchronously once it is in the near-cache. Redis failing with the
   * context cached here: `then` runs on the cached one if not strict and no
   * invalidation said it is outdated; otherwise the error.
   */
  async whenLoaded<T>(userUuid: string, then: () => T, claims?: Claims): Promise<T> {
    const start = localNow();
    for (let attempt = 0; attempt < 3; attempt++) {
      let fresh: Fresh | undefined;
      try {
        fresh = await this.#fresh.fetch(userUuid, { forceRefresh: true, context: claims });
      } catch (error) {
        if (!(error instanceof ContextStoreUnavailableError)) throw error;
        // The app's loader failed: a user who has no context in Redis is never served the defaults.
        if (error instanceof ContextLoadError) throw error;
        // Strict, nothing cached, or what is cached is known to be outdated: 503.
        if (this.#o.strict || !this.#o.hasLocal(userUuid) || this.#outdated.has(userUuid)) throw error;
        this.#o.stats.servedUnconfirmed++;
        warnOnce(
          'KUC_REDIS_STALE_READ',
          `Redis is unavailable (${error.message}); requests of users cached here are served from the near-cache ` +
            "(consistency: 'available'; set consistency: 'strict' to answer 503 instead).",
        );
      }
      if (this.#o.closed()) throw new StoreClosedError('The context store is closed; no new user scope can start.');
      // Joined a read sent too long before this request started: read again.
      if (fresh !== undefined && !(fresh.checkedAt >= start || start - fresh.checkedAt < this.#readBound)) continue;
      // The local entry may have been evicted (LRU) between the load and now.
      if (this.#o.hasLocal(userUuid)) return then();
    }
    throw new ContextStoreUnavailableError(
      'The context could not be read from Redis recently enough, or kept in the near-cache (it is full); retry shortly.',
    );
  }

  /** The entry must be read again before it is served. */
  forget(userUuid: string): void {
    this.#fresh.delete(userUuid);
  }

  /** The user is gone from this instance. */
  drop(userUuid: string): void {
    this.#fresh.delete(userUuid);
    this.#outdated.delete(userUuid);
  }

  clear(): void {
    this.#fresh.clear();
  }

  /** An invalidation at logical time `tick` said the local copy is outdated. */
  markOutdated(userUuid: string, tick: number): void {
    this.#outdated.set(userUuid, tick);
  }

  /** A Redis reply sent at logical time `tick` was installed: it includes any write an invalidation before it announced. */
  settled(userUuid: string, tick: number): void {
    if ((this.#outdated.get(userUuid) ?? Number.POSITIVE_INFINITY) < tick) this.#outdated.delete(userUuid);
  }
}
