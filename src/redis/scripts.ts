/**
 * The Lua scripts of the Redis store. Each runs atomically in Redis, so a
 * configuration is never read half-written and two writers are serialised:
 * no instance ever reads a torn configuration (the provider of one write and
 * the model of another).
 *
 * Layout of `<prefix>ctx:<user>` (a hash): `v` version (incremented by every
 * write), `a` last access (ms since the epoch), `f:<field>` one configuration
 * field each (see codec.ts). `<prefix>seq` (on a Cluster `<prefix>seq:{<tag>}`,
 * one per master): the number of invalidations that node has published, its
 * lane (see confirmation.ts).
 *
 * Writes are fenced (see fence.ts): each carries a deadline on Redis's own
 * clock (`TIME`, read inside the script), after which its sender has already
 * answered the write as failed. A write that reaches Redis later (stalled in
 * a socket, replayed after a reconnection) is refused with `KUC_FENCED` and
 * changes nothing, so a write answered with an error is never applied after
 * that answer.
 *
 * @internal
 * @module
 */
import { createHash } from 'node:crypto';

export interface Script {
  readonly source: string;
  readonly sha: string;
  /** Whether the script writes and takes a fence deadline. */
  readonly fenced: boolean;
}

function script(source: string, fenced = false): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex'), fenced };
}

/** Lua: refuses the script when Redis's clock (ms) is past ARGV[i]. */
const fence = (i: number): string => `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if now > tonumber(ARGV[${i}]) then
  return redis.error_reply('KUC_FENCED ' .. string.format('%.3f', now - tonumber(ARGV[${i}])))
end`;

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

/** Lua: increments the lane counter ARGV[k] and returns the invalidation's origin token `<origin>#<lane>:<seq>` (see confirmation.ts). */
const numbered = (origin: number, k: number): string =>
  `ARGV[${origin}] .. '#' .. ARGV[${k + 1}] .. ':' .. redis.call('INCR', ARGV[${k}])`;

/**
 * Writes fields as one step, bumps the version, refreshes the TTL and
 * publishes the invalidation. KEYS[1] context key (KEYS[2] the lane key, when
 * it can be declared); ARGV[1] now, ARGV[2] TTL, ARGV[3] channel, ARGV[4]
 * origin instance, ARGV[5] user, ARGV[6] fence deadline (Redis clock, ms),
 * ARGV[7] expected version ('' = any: otherwise a different stored version
 * refuses the write with `KUC_CONFLICT <version>`), ARGV[8] lane key, ARGV[9]
 * lane id, ARGV[10..] field/value pairs. Returns the whole hash after the write.
 */
export const COMMIT = script(`${fence(6)}
if ARGV[7] ~= '' then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
  if cur ~= tonumber(ARGV[7]) then return redis.error_reply('KUC_CONFLICT ' .. cur) end
end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'a', ARGV[1], unpack(ARGV, 10))
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
redis.call('PUBLISH', ARGV[3], ${numbered(4, 8)} .. ' ' .. v .. ' ' .. ARGV[5])
return redis.call('HGETALL', KEYS[1])
`, true);

/**
 * Deletes a context and tells every instance to drop it. KEYS[1] context key
 * (KEYS[2] the lane key, when declared); ARGV[1] channel, ARGV[2] origin
 * instance, ARGV[3] user, ARGV[4] fence deadline, ARGV[5] lane key, ARGV[6]
 * lane id. Returns 1 when the context was in Redis, else 0 (the invalidation
 * is published either way: near-caches may still hold it).
 */
export const DELETE = script(`${fence(4)}
local n = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ${numbered(2, 5)} .. ' del ' .. ARGV[3])
return n
`, true);

/**
 * A heartbeat: publishes ARGV[2] followed by ` <lane id>:<lane counter>`, on
 * the node whose lane KEYS[1] is, after every invalidation it numbered.
 * ARGV[1] channel, ARGV[2] `<origin> hb <round>:<node>`, ARGV[3] lane id.
 */
export const BEAT = script(`
return redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ':' .. (redis.call('GET', KEYS[1]) or '0'))
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
