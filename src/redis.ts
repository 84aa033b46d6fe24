/**
 * `koa-user-context/redis`: the Redis-backed context store (ioredis is an
 * optional peer dependency; the root entry never loads it). Standalone
 * Redis, Sentinel (`new Redis({ sentinels, name })`) and Redis Cluster
 * (`new Cluster(nodes)`) are supported.
 *
 * @module
 */
export {
  RedisContextStore,
  type RedisConsistency,
  type RedisContextStoreOptions,
  type RedisReadiness,
  type RedisStoreStats,
} from './redis/store.js';
export type { EncryptionKeyInput } from './redis/codec.js';
