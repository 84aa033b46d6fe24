/**
 * `koa-user-context/redis`: the Redis-backed context store (ioredis is an
 * optional peer dependency; the root entry never loads it).
 *
 * @module
 */
export { RedisContextStore, type RedisContextStoreOptions, type RedisStoreStats } from './redis/store.js';
export type { EncryptionKeyInput } from './redis/codec.js';
