/**
 * Options of the Redis store and their validation (once, in the constructor).
 *
 * @module
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { SECRET_FIELD_NAMES } from '../context/fields.js';
import type { ContextStoreOptions } from '../store/options.js';
import { toEncryptionKey, type EncryptionKeyInput } from './codec.js';
import { isClient } from './topology.js';

/**
 * What a store does with a near-cached context it cannot confirm with Redis
 * (Redis unreachable, the subscription lost, a revalidation failing):
 * - `'available'`: serves it, unless an invalidation said it is outdated
 *   (requests keep working during an outage; an instance cut off from Redis
 *   may serve a configuration another instance has replaced, until it
 *   reconnects);
 * - `'strict'`: a request is served from the near-cache only while this
 *   instance holds a confirmation younger than `maxStaleness` (its own read
 *   of the context, or a heartbeat that came back through every node, after
 *   every invalidation published before it); otherwise it reads Redis, and
 *   answers 503 (`ContextStoreUnavailableError`) when Redis does not answer.
 *   So every answer includes each write acknowledged more than
 *   `maxStaleness` ms before the request started, under any fault.
 */
export type RedisConsistency = 'available' | 'strict';

/** Options of {@link RedisContextStore}. */
export interface RedisContextStoreOptions extends ContextStoreOptions {
  /**
   * The Redis deployment: a URL such as `redis://127.0.0.1:6379` (the store
   * opens and closes its own connection, tuned to fail fast), or an ioredis
   * client: a `Redis` (standalone, or Sentinel: `new Redis({ sentinels, name })`)
   * or a `Cluster`. A client passed in is used for commands and left open on
   * `close()`; the subscriber connection is the store's own. Best created with
   * `enableOfflineQueue: false` (requests then fail at once while Redis is
   * unreachable instead of after `commandTimeout`); writes are fenced either way.
   */
  redis: Redis | Cluster | string;
  /**
   * Extra ioredis options for the connections opened from a URL.
   * @default {}
   */
  redisOptions?: RedisOptions;
  /**
   * Prefix of every key and of the invalidation channel. Instances that share
   * contexts use the same prefix; different apps (or test runs) use different ones.
   * @default 'koa-user-context:'
   */
  keyPrefix?: string;
  /**
   * 32-byte AES-256-GCM key for the {@link secretFields}. Required unless
   * `secretFields` is empty; every instance sharing the prefix needs the same key.
   * @default undefined
   */
  encryptionKey?: EncryptionKeyInput;
  /**
   * Fields that may hold credentials (Azure keys, Friendli tokens, MCP server
   * headers): written to Redis encrypted, never in plain text.
   * @default SECRET_FIELD_NAMES: the built-in fields that may hold credentials
   */
  secretFields?: readonly string[];
  /**
   * The sliding TTL of a context in Redis is refreshed at most once per this
   * many ms per user and instance (reads never write more often). Redis keeps
   * a context for `ttl + refreshInterval` after its last refresh.
   * @default min(60_000, ttl / 4)
   */
  refreshInterval?: number;
  /**
   * A Redis command not answered within this many ms fails (503 for the
   * request). A write that fails this way is never applied afterwards (it is
   * fenced on Redis's clock).
   * @default 2_000
   */
  commandTimeout?: number;
  /**
   * Availability or strictness when a near-cached context cannot be
   * confirmed with Redis; see {@link RedisConsistency} and
   * docs/scaling-out-redis.md.
   * @default 'available'
   */
  consistency?: RedisConsistency;
  /**
   * `consistency: 'strict'` only: the staleness bound in ms. A near-cached
   * context is served only while this instance holds a confirmation younger
   * than this (see {@link RedisConsistency}); heartbeats are sent four
   * times per bound (or every `heartbeatInterval`, if shorter), so a healthy
   * instance always holds one. A write acknowledged more than this long
   * before a request started is in its answer, or the answer is a 503.
   * @default 250
   */
  maxStaleness?: number;
  /**
   * A near-cached context confirmed by Redis longer ago than this is read
   * again before it is served (one round trip per user and interval), which
   * bounds staleness even if an invalidation is lost. `0`: every request
   * reads Redis, with a read sent after the request started: with
   * `consistency: 'strict'`, linearizable reads (or a 503), at one Redis
   * round trip per request (see docs/scaling-out-redis.md).
   * @default 5_000
   */
  revalidateInterval?: number;
  /**
   * How often the store confirms its subscription end to end (a heartbeat
   * through every master back to its subscriber) and measures the Redis
   * clocks used for fencing. A silently lost subscription is noticed within
   * two to three intervals; a closed connection at once.
   * @default 1_000
   */
  heartbeatInterval?: number;
}

export const DEFAULT_SECRET_FIELDS = SECRET_FIELD_NAMES;

/** The options of {@link RedisContextStoreOptions} beyond the in-memory store's (for the unknown-option check). */
export const REDIS_OPTION_NAMES: readonly string[] = Object.keys({
  redis: 1, redisOptions: 1, keyPrefix: 1, encryptionKey: 1, secretFields: 1, refreshInterval: 1, commandTimeout: 1,
  consistency: 1, maxStaleness: 1, revalidateInterval: 1, heartbeatInterval: 1,
} satisfies Record<Exclude<keyof RedisContextStoreOptions, keyof ContextStoreOptions>, 1>);

/** Validates the Redis-specific options; throws a TypeError naming the option and how to fix it. */
export function checkOptions(options: RedisContextStoreOptions): RedisContextStoreOptions {
  if (options === null || typeof options !== 'object') {
    throw new TypeError("RedisContextStore(options): options is required, e.g. { redis: 'redis://127.0.0.1:6379', encryptionKey }");
  }
  const { redis, keyPrefix, commandTimeout, secretFields, encryptionKey, consistency } = options;
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\//.test(redis)) throw new TypeError(`options.redis must be a redis:// or rediss:// URL, got "${redis}"`);
  } else if (!isClient(redis)) {
    throw new TypeError('options.redis must be a Redis URL (redis://host:port) or an ioredis client (Redis or Cluster)');
  }
  if (keyPrefix !== undefined && (typeof keyPrefix !== 'string' || keyPrefix === '' || /\s/.test(keyPrefix))) {
    throw new TypeError('options.keyPrefix must be a non-empty string without spaces');
  }
  const ms = (name: 'commandTimeout' | 'heartbeatInterval', value: unknown): void => {
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)) {
      throw new TypeError(`options.${name} must be a number of milliseconds > 0`);
    }
  };
  ms('commandTimeout', commandTimeout);
  ms('heartbeatInterval', options.heartbeatInterval);
  const revalidate = options.revalidateInterval;
  if (revalidate !== undefined && (typeof revalidate !== 'number' || !Number.isFinite(revalidate) || revalidate < 0)) {
    throw new TypeError('options.revalidateInterval must be a number of milliseconds >= 0 (0: read Redis on every request)');
  }
  if (consistency !== undefined && consistency !== 'available' && consistency !== 'strict') {
    throw new TypeError(`options.consistency must be 'available' or 'strict', got ${JSON.stringify(consistency)}`);
  }
  const bound = options.maxStaleness;
  if (bound !== undefined && consistency !== 'strict') {
    throw new TypeError("options.maxStaleness bounds consistency: 'strict' only; set consistency: 'strict' or remove maxStaleness");
  }
  if (bound !== undefined && (typeof bound !== 'number' || !Number.isFinite(bound) || bound < 10)) {
    throw new TypeError('options.maxStaleness must be a number of milliseconds >= 10 (the staleness bound of consistency: \'strict\')');
  }
  if (secretFields !== undefined && (!Array.isArray(secretFields) || secretFields.some((f) => typeof f !== 'string'))) {
    throw new TypeError('options.secretFields must be an array of field names');
  }
  if ((secretFields ?? DEFAULT_SECRET_FIELDS).length > 0 && encryptionKey === undefined) {
    throw new TypeError(
      `options.encryptionKey is required: credentials in ${(secretFields ?? DEFAULT_SECRET_FIELDS).join(', ')} are ` +
        'encrypted before they reach Redis. Give the same 32-byte key to every instance (or set secretFields: [] if ' +
        'those fields never hold a credential).',
    );
  }
  if (encryptionKey !== undefined) toEncryptionKey(encryptionKey);
  return options;
}
