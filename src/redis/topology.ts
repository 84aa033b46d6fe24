/**
 * What differs between a single Redis (or a Sentinel-managed primary, which
 * ioredis presents as one `Redis`) and a Redis Cluster: the connections the
 * store opens, the nodes that execute scripts and relay invalidations, the
 * subscriber connection, and the client-option checks.
 *
 * @internal
 * @module
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { warnOnce } from '../warn.js';

/** The command client: a `Redis` (standalone or Sentinel) or a `Cluster`. */
export type RedisClient = Redis | Cluster;

/** Whether the client is an ioredis `Cluster` (also from another copy of ioredis). */
export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster || (client as { isCluster?: unknown }).isCluster === true;
}

/** Whether a value looks like an ioredis client (`Redis` or `Cluster`). */
export function isClient(value: unknown): value is RedisClient {
  return value !== null && typeof value === 'object' && typeof (value as Redis).duplicate === 'function' &&
    typeof (value as Redis).evalsha === 'function';
}

/** The connection options of a URL-configured client: fail fast, never queue or replay. */
export function openClient(url: string, extra: RedisOptions | undefined, commandTimeout: number, name: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times) => Math.min(times * 50, 1_000),
    commandTimeout,
    connectionName: name,
    ...extra,
  });
}

/**
 * The command client of a store: opened from a URL (owned: the store quits
 * it on close) or the client passed in (checked). `onServerChange` runs when
 * the server behind a connection may have changed (a connection closed, a
 * Cluster node added or removed).
 */
export function connect(
  redis: RedisClient | string,
  extra: RedisOptions | undefined,
  commandTimeout: number,
  name: string,
  onServerChange: () => void,
): { client: RedisClient; owned: boolean } {
  let client: RedisClient;
  if (typeof redis === 'string') {
    client = openClient(redis, extra, commandTimeout, name);
    client.on('error', (error: Error) => {
      warnOnce('KUC_REDIS_ERROR', `Redis connection error (the client reconnects by itself): ${error.message}`);
    });
  } else {
    client = redis;
    checkClientOptions(redis);
  }
  client.on('close', onServerChange);
  if (isCluster(client)) {
    client.on('+node', onServerChange);
    client.on('-node', onServerChange);
  }
  return { client, owned: typeof redis === 'string' };
}

/**
 * Warns (once) when a client passed in makes requests wait while Redis is
 * unreachable: queued commands are sent after the reconnection. Writes are
 * fenced, so a late command is refused and correctness does not depend on
 * these options; what they cost is requests waiting `commandTimeout` instead
 * of failing at once.
 */
export function checkClientOptions(client: RedisClient): void {
  const fix = isCluster(client)
    ? (client.options.enableOfflineQueue ?? true) !== false
      ? 'new Cluster(nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } })'
      : undefined
    : client.options.enableOfflineQueue !== false || client.options.autoResendUnfulfilledCommands !== false
      ? 'new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false })'
      : undefined;
  if (fix === undefined) return;
  warnOnce(
    'KUC_REDIS_CLIENT_OPTIONS',
    'The ioredis client given to RedisContextStore queues commands while disconnected, so requests wait for ' +
      `commandTimeout instead of failing at once (writes are fenced: a late one is refused, never applied). Create it with ${fix}.`,
  );
}

/**
 * The nodes that execute the store's scripts and relay its invalidations,
 * by name: the client itself, or every master of a Cluster.
 */
export function masters(client: RedisClient): Map<string, Redis> {
  if (!isCluster(client)) return new Map([['primary', client]]);
  const nodes = new Map<string, Redis>();
  for (const node of client.nodes('master')) nodes.set(`${String(node.options.host)}:${String(node.options.port)}`, node);
  return nodes;
}

/**
 * A connection for SUBSCRIBE. From a `Redis`: a duplicate (same server, or
 * the same Sentinel group). From a `Cluster`: a plain connection to one
 * master (`attempt` picks which, so a replacement goes to another node);
 * classic PUBLISH reaches every node of a cluster, so one subscription
 * hears every instance's invalidations.
 */
export function openSubscriber(client: RedisClient, name: string, attempt: number): Redis {
  const own = { autoResubscribe: false, enableOfflineQueue: true, connectionName: name, maxRetriesPerRequest: null };
  if (!isCluster(client)) return client.duplicate(own);
  const nodes = client.nodes('master');
  const startup = (client as unknown as { startupNodes?: { host?: string; port?: number }[] }).startupNodes ?? [];
  const candidates = nodes.length > 0
    ? nodes.map((n) => ({ host: n.options.host, port: n.options.port }))
    : startup.map((n) => ({ host: n.host, port: n.port }));
  const target = candidates[attempt % Math.max(1, candidates.length)] ?? { host: '127.0.0.1', port: 6379 };
  return new Redis({
    ...client.options.redisOptions,
    host: target.host,
    port: target.port,
    retryStrategy: (times: number) => Math.min(times * 50, 1_000),
    ...own,
  });
}

/**
 * The Cluster hash slot of a key (CRC16/XMODEM of the key, or of its
 * `{hash tag}`, modulo 16384), as Redis computes it: which master a script on
 * that key runs on (`client.slots[slot][0]`).
 */
export function slotOf(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(key)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16_384;
}
