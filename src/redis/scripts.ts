/**
 * The Lua scripts of the Redis store. Each runs atomically in Redis, so a
 * configuration is never read half-written and two writers are serialised:
 * no instance ever reads a torn configuration (the provider of one write and
 * the model of another).
 *
 * Layout of `<prefix>ctx:<user>` (a hash): `v` version (incremented by every
 * write), `a` last access (ms since the epoch), `f:<field>` one configuration
 * field each (see redis-codec.ts).
 *
 * @internal
 * @module
 */
import { createHash } from 'node:crypto';

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * Reads a context and, if it exists, refreshes its sliding TTL and last access.
 * KEYS[1] context key; ARGV[1] now (ms), ARGV[2] TTL (ms, 0 = none). Returns HGETALL.
 */
export const LOAD = script(`
local r = redis.call('HGETALL', KEYS[1])
if #r > 0 then
  redis.call('HSET', KEYS[1], 'a', ARGV[1])
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
return r
`);

/**
 * Writes fields as one step, bumps the version, refreshes the TTL and
 * publishes the invalidation. KEYS[1] context key; ARGV[1] now, ARGV[2] TTL,
 * ARGV[3] channel, ARGV[4] origin instance, ARGV[5] user, ARGV[6..] field/value
 * pairs. Returns the whole hash after the write.
 */
export const COMMIT = script(`
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'a', ARGV[1], unpack(ARGV, 6))
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. v .. ' ' .. ARGV[5])
return redis.call('HGETALL', KEYS[1])
`);

/**
 * Refreshes the sliding TTL of an existing context. KEYS[1] context key;
 * ARGV[1] now, ARGV[2] TTL. Returns the stored version, or -1 when the
 * context is not in Redis.
 */
export const TOUCH = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'a', ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
`);
