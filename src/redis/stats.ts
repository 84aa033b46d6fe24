/**
 * What the Redis store reports about itself: traffic counters and readiness.
 *
 * @module
 */
import type { RedisConsistency } from './options.js';
import type { SubscriptionState } from './subscription.js';

/** Counters of the Redis traffic of one store. */
export interface RedisStoreStats {
  /** Contexts read from Redis (near-cache misses and revalidations, after single flight). */
  loads: number;
  /** Of the loads, those only due to `revalidateInterval` (the entry was otherwise current). */
  revalidations: number;
  /**
   * Of the loads, those only because the near-cache's confirmation was older
   * than `maxStaleness` (`consistency: 'strict'`: heartbeats late or lost).
   */
  strictReads: number;
  /** Writes stored. */
  commits: number;
  /** Writes Redis refused because they reached it after their deadline (answered as failed). */
  fenced: number;
  /** Writes refused because a client in the patch was built for a configuration changed since. */
  conflicts: number;
  /** Contexts deleted from Redis by this instance. */
  deletes: number;
  /** TTL refreshes sent. */
  touches: number;
  /** Invalidation messages received. */
  invalidations: number;
  /** Near-cached contexts served while Redis could not confirm them (`consistency: 'available'`). */
  servedUnconfirmed: number;
}

/** What `GET /ready` reports. */
export interface RedisReadiness {
  ready: boolean;
  /** The command connection's status (ioredis `status`). */
  redis: string;
  /** The invalidation subscription, confirmed end to end by heartbeats. */
  invalidations: SubscriptionState;
  /** Times the subscription was lost since the store started. */
  subscriptionLosses: number;
  /** Invalidations found missing (a gap in their numbers) while heartbeats arrived. */
  invalidationGaps: number;
  /** Whether Redis's clock is measured (writes can be fenced). */
  clock: 'measured' | 'unknown';
  deployment: 'standalone' | 'cluster';
  consistency: RedisConsistency;
  closed: boolean;
}
