/**
 * The Redis usage backend, shared by every instance: the admission (token
 * reservation + concurrency slot) and the booking (settle the reservation,
 * free the slot, add the counters) are each one Lua script on the user's
 * keys, which share one hash tag (`<prefix>{<user>}:…`), so they run
 * atomically on one node of a Cluster too. Requests per minute run on
 * rate-limiter-flexible's `RateLimiterRedis`.
 *
 * Both scripts are idempotent per call id: a script that ioredis sends again
 * after a reconnection, or a booking the meter replays after an outage,
 * changes nothing the second time (a `done` set remembers booked calls for
 * `rememberMs`).
 *
 * ```ts
 * import { Redis } from 'ioredis';
 * import { createUsageMeter, RedisUsageBackend } from 'koa-user-context/usage';
 * const usage = createUsageMeter({ backend: new RedisUsageBackend({ redis: new Redis() }), limits: { requestsPerMinute: 60 } });
 * ```
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { periodStart } from './fields.js';
import { RequestWindows } from './rate.js';
import type { Admission, BeginRequest, Booking, RawUsage, UsageBackend } from './types.js';

/** Options of {@link RedisUsageBackend}. */
export interface RedisUsageBackendOptions {
  /** An ioredis client: `new Redis(…)` (standalone, Sentinel) or `new Cluster(…)`. Required; not closed by the backend. */
  redis: Redis | Cluster;
  /**
   * Prefix of every key.
   * @default 'kuc:usage:'
   */
  prefix?: string;
  /**
   * How long booked call ids are remembered, so that a booking sent twice
   * applies once, ms.
   * @default 3_600_000
   */
  rememberMs?: number;
}

const BEGIN = `
local callId = ARGV[1]
if redis.call('HEXISTS', KEYS[2], callId) == 1 or redis.call('ZSCORE', KEYS[4], callId) then return {1} end
local now = tonumber(ARGV[5])
local concurrent = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if concurrent >= 0 and redis.call('ZCARD', KEYS[3]) >= concurrent then return {0, 'concurrent'} end
local tokens = tonumber(ARGV[3])
if tokens >= 0 then
  local w = redis.call('HMGET', KEYS[1], 'used', 'reserved')
  if (tonumber(w[1]) or 0) + (tonumber(w[2]) or 0) >= tokens then return {0, 'tokens'} end
end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('HSET', KEYS[2], callId, ARGV[8] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), callId)
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {1}`;

const BOOK = `
local callId = ARGV[1]
local now = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[3], callId) then return 0 end
redis.call('ZADD', KEYS[3], now, callId)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
local window = KEYS[4]
local held = redis.call('HGET', KEYS[1], callId)
if held then
  local sep = string.find(held, ':', 1, true)
  window = ARGV[6] .. string.sub(held, 1, sep - 1)
  redis.call('HDEL', KEYS[1], callId)
  redis.call('HINCRBY', window, 'reserved', -tonumber(string.sub(held, sep + 1)))
end
redis.call('ZREM', KEYS[2], callId)
local tokens = tonumber(ARGV[2])
if tokens ~= 0 then
  redis.call('HINCRBY', window, 'used', tokens)
  redis.call('PEXPIRE', window, ARGV[5])
end
local n = tonumber(ARGV[7])
for i = 8, 7 + 2 * n, 2 do redis.call('HINCRBY', KEYS[5], ARGV[i], ARGV[i + 1]) end
for i = 8 + 2 * n, #ARGV, 2 do redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]) end
return 1`;

const sha = (source: string): string => createHash('sha1').update(source).digest('hex');
const SCRIPTS = { begin: { source: BEGIN, sha: sha(BEGIN) }, book: { source: BOOK, sha: sha(BOOK) } };

/** Usage shared by every instance through Redis. */
export class RedisUsageBackend implements UsageBackend {
  readonly kind = 'redis';
  readonly remote = true;
  readonly #redis: Redis | Cluster;
  readonly #prefix: string;
  readonly #rememberMs: number;
  readonly #windows: RequestWindows;
  #waiting: Promise<void> | undefined;

  constructor(options: RedisUsageBackendOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('RedisUsageBackend(options): options must be an object { redis }');
    for (const key of Object.keys(options)) {
      if (!['redis', 'prefix', 'rememberMs'].includes(key)) throw new TypeError(`RedisUsageBackend: unknown option "${key}"; known: redis, prefix, rememberMs`);
    }
    const { redis, prefix = 'kuc:usage:', rememberMs = 3_600_000 } = options;
    if (redis === null || typeof redis !== 'object' || typeof redis.evalsha !== 'function') {
      throw new TypeError('options.redis must be an ioredis client (new Redis() or new Cluster())');
    }
    if (typeof prefix !== 'string' || /[{}\s]/.test(prefix)) throw new TypeError('options.prefix must be a string without braces or spaces');
    if (!Number.isSafeInteger(rememberMs) || rememberMs < 60_000) throw new TypeError('options.rememberMs must be an integer >= 60000');
    this.#redis = redis;
    this.#prefix = prefix;
    this.#rememberMs = rememberMs;
    this.#windows = new RequestWindows((points) => new RateLimiterRedis({
      storeClient: redis,
      points,
      duration: 60,
      keyPrefix: `${prefix}rpm${points}`,
      rejectIfRedisNotReady: true,
    }));
  }

  /** The key prefix of one user; every key of theirs shares its hash tag. */
  #user(userUuid: string): string {
    return `${this.#prefix}{${userUuid}}:`;
  }

  /**
   * Resolves once the client is ready. Commands are never queued in ioredis's
   * offline queue (to be sent at an unknown later time); the meter's
   * `storeTimeoutMs` bounds the wait.
   */
  #ready(): Promise<void> | undefined {
    if (this.#redis.status === 'ready') return undefined;
    return (this.#waiting ??= new Promise<void>((resolve) => {
      this.#redis.once('ready', () => {
        this.#waiting = undefined;
        resolve();
      });
    }));
  }

  async #run(script: { source: string; sha: string }, keys: string[], args: Array<string | number>): Promise<unknown> {
    await this.#ready();
    const argv = args.map(String);
    try {
      return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...argv);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.#redis.eval(script.source, keys.length, ...keys, ...argv);
    }
  }

  async begin(request: BeginRequest): Promise<Admission> {
    const { userUuid, callId, estimate, limits, now, leaseMs } = request;
    const rpm = limits.requestsPerMinute;
    const tag = `{${userUuid}}`;
    if (rpm !== undefined) {
      await this.#ready();
      const wait = await this.#windows.take(tag, rpm);
      if (wait > 0) return { ok: false, limit: 'requests', retryAfterMs: wait };
    }
    const u = this.#user(userUuid);
    const start = periodStart(now, limits.periodMs);
    let answer: unknown;
    try {
      answer = await this.#run(SCRIPTS.begin, [`${u}w:${start}`, `${u}res`, `${u}slots`, `${u}done`], [
        callId, estimate, limits.tokensPerPeriod ?? -1, limits.concurrent ?? -1, now, leaseMs, 2 * limits.periodMs, start,
      ]);
    } catch (error) {
      if (rpm !== undefined) await this.#windows.giveBack(tag, rpm).catch(() => {});
      throw error;
    }
    const [ok, limit] = answer as [number, string | undefined];
    if (ok === 1) return { ok: true };
    if (rpm !== undefined) await this.#windows.giveBack(tag, rpm);
    return limit === 'tokens'
      ? { ok: false, limit: 'tokens', retryAfterMs: start + limits.periodMs - now }
      : { ok: false, limit: 'concurrent', retryAfterMs: 1000 };
  }

  async book(booking: Booking): Promise<void> {
    const u = this.#user(booking.userUuid);
    const start = periodStart(booking.now, booking.periodMs);
    const args: Array<string | number> = [
      booking.callId, booking.tokens, booking.now, this.#rememberMs, 2 * booking.periodMs, `${u}w:`, booking.counters.size,
    ];
    for (const [field, n] of booking.counters) args.push(field, n);
    for (const [field, v] of booking.sets) args.push(field, v);
    await this.#run(SCRIPTS.book, [`${u}res`, `${u}slots`, `${u}done`, `${u}w:${start}`, `${u}c`], args);
    if (booking.counters.size > 0) await this.#redis.zadd(`${this.#prefix}users`, booking.now, booking.userUuid);
  }

  async read(userUuid: string, periodMs: number, now: number): Promise<RawUsage> {
    const u = this.#user(userUuid);
    const [counters, window, inFlight] = await Promise.all([
      this.#redis.hgetall(`${u}c`),
      this.#redis.hmget(`${u}w:${periodStart(now, periodMs)}`, 'used', 'reserved'),
      this.#redis.zcount(`${u}slots`, `(${now}`, '+inf'),
    ]);
    return {
      userUuid,
      counters: new Map(Object.entries(counters).map(([k, v]) => [k, Number(v)])),
      tokensUsed: Number(window[0] ?? 0),
      tokensReserved: Number(window[1] ?? 0),
      inFlight,
    };
  }

  async users(max: number): Promise<string[]> {
    return this.#redis.zrevrange(`${this.#prefix}users`, 0, max - 1);
  }

  /** The client is the app's: it is not closed here. */
  async close(): Promise<void> {}
}
