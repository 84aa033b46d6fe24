/**
 * Usage and limits across instances on one Redis: two meters (two
 * "instances", each with its own ioredis client, store and registry) book
 * every user's calls exactly and hold the same limits between them; and with
 * Redis killed mid-run (an own redis-server, AOF on), each fault mode does
 * what it says, and after recovery every call the wire server answered is
 * booked exactly once (the wire server is the client-side ledger).
 */
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { getUserLlm } from '../src/ai.js';
import { configureUser, runAsUser, UsageLimitExceededError, UsageStoreUnavailableError, type ContextPatch } from '../src/index.js';
import { createUsageMeter, RedisUsageBackend, type UsageMeter, type UsageMeterOptions } from '../src/usage.js';
import { adminClient, deletePrefix, OwnRedisCluster, OwnRedisServer, REDIS_URL, requireRedis, requireRedisServerBinary, runPrefix, sleep } from './helpers/redis.js';
import { useStores } from './support/stores.js';

const HAVE_REDIS = await requireRedis('usage on Redis');
const HAVE_BINARY = requireRedisServerBinary('usage under a Redis fault');
const prefix = runPrefix('usage');
let wire: WireServer;
const clients: Array<Redis | Cluster> = [];
beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 1, words: 8 });
});
afterAll(async () => {
  await wire.close();
  if (HAVE_REDIS) {
    const admin = adminClient();
    await deletePrefix(admin, prefix);
    admin.disconnect();
  }
  for (const c of clients) c.disconnect();
});
const newStore = useStores();

const PATCHES: Array<(apiKey: string) => ContextPatch> = [
  (apiKey) => ({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey } }),
  (apiKey) => ({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey } }),
  (apiKey) => ({ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { apiKey } }),
];

interface Instance {
  meter: UsageMeter;
  store: ReturnType<typeof newStore>;
}

function instance(url: string | Cluster, options: UsageMeterOptions = {}, keyPrefix = prefix): Instance {
  const redis = typeof url === 'string' ? new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 500, retryStrategy: () => 100 }) : url;
  redis.on('error', () => {});
  clients.push(redis);
  const meter = createUsageMeter({ backend: new RedisUsageBackend({ redis, prefix: keyPrefix }), ...options });
  return { meter, store: newStore({ resources: { llmInstance: exampleLlmRegistry(wire.url, { usage: meter }).resource() } }) };
}

const wireTotal = (key: string): number =>
  wire.calls.filter((c) => c.keyHash === keyFingerprint(key)).reduce((s, c) => s + (c.usage?.inputTokens ?? 0) + (c.usage?.outputTokens ?? 0), 0);

async function call(on: Instance, user: string, key: string, patch: (k: string) => ContextPatch, prompt: string): Promise<unknown> {
  return runAsUser(user, async () => {
    await configureUser(patch(key));
    return (await getUserLlm())!.generateText({ prompt, maxRetries: 0 }).then(() => 'ok', (e: unknown) => e);
  }, { store: on.store });
}

describe.skipIf(!HAVE_REDIS)('usage on Redis, two instances', () => {
  it('50 users, each calling through both instances at once: per-user totals equal the wire\'s per key, read the same on either instance', async () => {
    const p = `${prefix}a:`;
    const [a, b] = [instance(REDIS_URL, {}, p), instance(REDIS_URL, {}, p)];
    const users = Array.from({ length: 50 }, (_, i) => ({ uuid: randomUUID(), key: `r${i}-${randomUUID()}`, patch: PATCHES[i % 3]! }));
    await Promise.all(users.flatMap((u, i) => Array.from({ length: 2 + (i % 3) }, async (_, j) => {
      await sleep(Math.random() * 20);
      expect(await call(j % 2 === 0 ? a : b, u.uuid, u.key, u.patch, `user ${i} call ${j}`)).toBe('ok');
    })));
    // Bookings are written after each call returns: once both instances have flushed, either reads everything.
    await Promise.all([a.meter.flush(), b.meter.flush()]);
    for (const u of users) {
      const [ua, ub] = [await a.meter.read(u.uuid), await b.meter.read(u.uuid)];
      expect(ua.inputTokens + ua.outputTokens).toBe(wireTotal(u.key));
      expect(ua.calls).toBe(wire.calls.filter((c) => c.keyHash === keyFingerprint(u.key)).length);
      expect({ ...ub, limits: undefined, period: { ...ub.period } }).toEqual({ ...ua, limits: undefined, period: { ...ua.period } });
      expect(ua.period).toMatchObject({ tokensUsed: wireTotal(u.key), tokensReserved: 0 });
    }
    expect((await a.meter.list()).length).toBe(50);
  });

  it('a token limit holds across the instances: 20 concurrent calls split between them overshoot by at most one estimate', async () => {
    const ESTIMATE = 25;
    const LIMIT = 100;
    const options = { limits: { tokensPerPeriod: LIMIT }, estimateTokens: () => ESTIMATE };
    const p = `${prefix}b:`;
    const [a, b] = [instance(REDIS_URL, options, p), instance(REDIS_URL, options, p)];
    const heavy = { uuid: randomUUID(), key: `heavy-${randomUUID()}` };
    const other = { uuid: randomUUID(), key: `other-${randomUUID()}` };
    const results = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => call(i % 2 === 0 ? a : b, heavy.uuid, heavy.key, PATCHES[0]!, 'spend it')),
      ...Array.from({ length: 4 }, (_, i) => call(i % 2 === 0 ? a : b, other.uuid, other.key, PATCHES[1]!, 'normal')),
    ]);
    const refused = results.slice(0, 20).filter((r) => r !== 'ok');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((e) => e instanceof UsageLimitExceededError && e.limit === 'tokens')).toBe(true);
    expect(results.slice(20)).toEqual(['ok', 'ok', 'ok', 'ok']);
    const used = wireTotal(heavy.key);
    expect(used - LIMIT).toBeLessThanOrEqual(ESTIMATE);
    await a.meter.flush();
    expect(20 - refused.length).toBe(Math.ceil(LIMIT / ESTIMATE));
    expect((await b.meter.read(heavy.uuid)).period.tokensUsed).toBe(used);
  });

  it('concurrency and requests per minute hold across the instances', async () => {
    const p = `${prefix}c:`;
    const options = { limits: { concurrent: 3, requestsPerMinute: 12 } };
    const [a, b] = [instance(REDIS_URL, options, p), instance(REDIS_URL, options, p)];
    const user = randomUUID();
    const key = `rc-${randomUUID()}`;
    // 10 at once: 3 slots between both instances.
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i % 2 ? a : b, user, key, PATCHES[2]!, 'one two three four five')));
    expect(burst.filter((r) => r === 'ok')).toHaveLength(3);
    expect(burst.filter((r) => r instanceof UsageLimitExceededError && r.limit === 'concurrent')).toHaveLength(7);
    // 3 of the minute's 12 are spent (the 7 refused by another limit were given back): 9 more pass, then the minute is full.
    const serial: unknown[] = [];
    for (let i = 0; i < 11; i++) serial.push(await call(i % 2 ? a : b, user, key, PATCHES[2]!, 'again'));
    expect(serial.slice(0, 9)).toEqual(Array(9).fill('ok'));
    expect(serial.slice(9).every((e) => e instanceof UsageLimitExceededError && e.limit === 'requests' && e.retryAfterMs > 0)).toBe(true);
    await b.meter.flush();
    const usage = await a.meter.read(user);
    expect(usage.limited).toEqual({ concurrent: 7, requests: 2 });
    expect(usage.calls).toBe(12);
  });
});

describe.skipIf(!HAVE_BINARY)('usage under a Redis fault (own redis-server killed mid-run)', () => {
  let server: OwnRedisServer;
  beforeAll(async () => {
    server = await OwnRedisServer.start();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it.each(['refuse', 'allow'] as const)('onStoreError: %s — while Redis is down calls are refused (503) or let through as configured; after recovery every answered call is booked exactly once', async (mode) => {
    const p = `${prefix}f-${mode}:`;
    const node = instance(server.url, { onStoreError: mode, storeTimeoutMs: 300, limits: { tokensPerPeriod: 1_000_000 } }, p);
    const users = Array.from({ length: 6 }, (_, i) => ({ uuid: randomUUID(), key: `f${i}-${randomUUID()}`, patch: PATCHES[i % 3]! }));
    const outcomes: Array<{ phase: string; ended: string; result: unknown }> = [];
    let phase = 'up';
    let running = true;
    const load = Promise.all(users.map(async (u, i) => {
      for (let j = 0; running; j++) {
        const at = phase;
        const result = await call(node, u.uuid, u.key, u.patch, `user ${i} call ${j}`);
        outcomes.push({ phase: at, ended: phase, result });
        await sleep(5 + Math.random() * 10);
      }
    }));
    await sleep(300);
    await server.kill();
    phase = 'down';
    await sleep(600);
    // Bookings of calls that ended while Redis was down wait in the meter, to be replayed. A booking
    // pends once its write has timed out (storeTimeoutMs after an admission that timed out too): on a
    // busy machine the first may take longer than the 600 ms, so wait for it (up to 5 s more).
    let pendingWhileDown = node.meter.pending;
    for (let waited = 0; pendingWhileDown === 0 && waited < 5_000; waited += 50) {
      await sleep(50);
      pendingWhileDown = node.meter.pending;
    }
    phase = 'recovering';
    await server.restart();
    await sleep(600);
    running = false;
    await load;
    await node.meter.flush();
    for (let i = 0; i < 50 && node.meter.pending > 0; i++) {
      await sleep(100);
      await node.meter.flush();
    }
    expect(pendingWhileDown).toBeGreaterThan(0);
    expect(node.meter.pending).toBe(0);

    const down = outcomes.filter((o) => o.phase === 'down').map((o) => o.result);
    expect(down.length).toBeGreaterThan(0);
    if (mode === 'refuse') {
      // Fail closed: no call goes out while the store is down.
      expect(down.filter((r) => r instanceof UsageStoreUnavailableError).length).toBeGreaterThan(0);
      expect(down.every((r) => r === 'ok' || r instanceof UsageStoreUnavailableError)).toBe(true);
    } else {
      expect(down.every((r) => r === 'ok')).toBe(true);
    }
    // Calls that began and ended before the kill all went through.
    expect(outcomes.filter((o) => o.ended === 'up').every((o) => o.result === 'ok')).toBe(true);
    // The ledger: what the wire answered per key is what Redis holds, once.
    for (const u of users) {
      const usage = await node.meter.read(u.uuid);
      const answered = wire.calls.filter((c) => c.keyHash === keyFingerprint(u.key));
      expect(usage.calls).toBe(answered.length);
      expect(usage.inputTokens + usage.outputTokens).toBe(wireTotal(u.key));
      expect(usage.period.tokensUsed).toBe(wireTotal(u.key));
      expect(usage.period.tokensReserved).toBe(0);
    }
  });
});

describe.skipIf(!HAVE_BINARY)('usage on a Redis Cluster (3 own masters), two instances', () => {
  let cluster: OwnRedisCluster;
  beforeAll(async () => {
    cluster = await OwnRedisCluster.start(3);
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    clients.length = 0;
    await Promise.all(cluster?.nodes.map((n) => n.destroy()) ?? []);
  });

  it('users spread over the slots: exact totals per key, and a token limit held across both instances', async () => {
    const ESTIMATE = 25;
    const LIMIT = 100;
    const options = { limits: { tokensPerPeriod: LIMIT }, estimateTokens: () => ESTIMATE };
    const node = () => new Cluster(cluster.startupNodes, { redisOptions: { maxRetriesPerRequest: 1 } });
    const [a, b] = [instance(node(), options, 'kuc:c:'), instance(node(), options, 'kuc:c:')];
    const users = Array.from({ length: 20 }, (_, i) => ({ uuid: randomUUID(), key: `cl${i}-${randomUUID()}`, patch: PATCHES[i % 3]! }));
    const results = await Promise.all(users.flatMap((u, i) => Array.from({ length: 8 }, async (_, j) => {
      await sleep(Math.random() * 10);
      return call(j % 2 ? a : b, u.uuid, u.key, u.patch, `cluster user ${i} call ${j}`);
    })));
    await Promise.all([a.meter.flush(), b.meter.flush()]);
    const refused = results.filter((r) => r !== 'ok');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((e) => e instanceof UsageLimitExceededError && e.limit === 'tokens')).toBe(true);
    for (const u of users) {
      const usage = await b.meter.read(u.uuid);
      const used = wireTotal(u.key);
      expect(usage.inputTokens + usage.outputTokens).toBe(used);
      expect(usage.period).toMatchObject({ tokensUsed: used, tokensReserved: 0 });
      expect(used - LIMIT).toBeLessThanOrEqual(ESTIMATE);
    }
    // The users' keys landed on more than one master.
    const holding = await Promise.all(cluster.nodes.map(async (n) => {
      const c = adminClient(n.url);
      try {
        return (await c.keys('kuc:c:{*')).length;
      } finally {
        c.disconnect();
      }
    }));
    expect(holding.filter((n) => n > 0).length).toBeGreaterThan(1);
  }, 60_000);
});
