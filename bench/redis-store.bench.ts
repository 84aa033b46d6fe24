/**
 * Measures the RedisContextStore against a real Redis (REDIS_URL or
 * 127.0.0.1:6379):
 *   - invalidation latency: after a configure is acknowledged on instance A,
 *     how long until (1) B has received the invalidation, (2) a request on B
 *     sees the new configuration (p50 / p99 / max over 200 reconfigures);
 *   - Redis reads for N concurrent first requests of one user (single flight);
 *   - reconnect time after CLIENT KILL of B's connections;
 *   - cost of opening a scope on a near-cached context vs the in-memory store.
 *
 *   npx tsx bench/redis-store.bench.ts
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { ContextStore, configureUser, getUserModel, runAsUser } from '../src/index.js';
import { RedisContextStore } from '../src/redis.js';

const url = process.env['REDIS_URL'] || 'redis://127.0.0.1:6379';
const keyPrefix = `kuc:bench:${randomUUID()}:`;
const encryptionKey = randomBytes(32);
const make = (): RedisContextStore => new RedisContextStore({ redis: url, keyPrefix, encryptionKey });
const a = make();
const b = make();
const admin = new Redis(url);

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const fmt = (ms: number): string => `${ms.toFixed(3)} ms`;
const summary = (label: string, values: number[]): void => {
  console.log(`${label.padEnd(44)} p50 ${fmt(pct(values, 50))}  p99 ${fmt(pct(values, 99))}  max ${fmt(Math.max(...values))}`);
};
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function modelOn(store: RedisContextStore, user: string): Promise<string | null> {
  return runAsUser(user, async () => getUserModel(), { store });
}

try {
  if (!(await a.whenReady()) || !(await b.whenReady())) throw new Error(`Redis not reachable at ${url}`);

  // 1. Invalidation latency.
  const user = randomUUID();
  await runAsUser(user, () => configureUser({ provider: 'Google', model: 'm-0' }), { store: a });
  const delivered: number[] = [];
  const visible: number[] = [];
  for (let i = 1; i <= 200; i++) {
    await modelOn(b, user); // b holds the previous configuration
    const before = b.stats.invalidations;
    await runAsUser(user, () => configureUser({ model: `m-${i}` }), { store: a });
    const acked = performance.now();
    while (b.stats.invalidations === before) await tick();
    delivered.push(performance.now() - acked);
    while ((await modelOn(b, user)) !== `m-${i}`) await tick();
    visible.push(performance.now() - acked);
  }
  console.log(`invalidation, 200 reconfigures on A, read on B (${url})`);
  summary('  ack on A → invalidation received on B', delivered);
  summary('  ack on A → request on B sees the change', visible);

  // 2. Single flight.
  for (const n of [100, 1000]) {
    const reader = make();
    await reader.whenReady();
    const users = Array.from({ length: 10 }, () => randomUUID());
    await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ provider: 'Anthropic', model: 'c' }), { store: a })));
    const t0 = performance.now();
    await Promise.all(users.flatMap((u) => Array.from({ length: n }, () => modelOn(reader, u))));
    const elapsed = performance.now() - t0;
    console.log(
      `single flight: ${users.length} users × ${n} concurrent first requests → ${reader.stats.loads} Redis reads (${fmt(elapsed)} total)`,
    );
    await reader.close();
  }

  // 3. Reconnect after CLIENT KILL.
  const reconnects: number[] = [];
  const firstLoad: number[] = [];
  for (let i = 0; i < 10; i++) {
    const list = String(await admin.client('LIST'));
    const ids = list.split('\n').filter((l) => l.includes(`name=koa-user-context:${b.instanceId}`)).map((l) => /\bid=(\d+)/.exec(l)![1]!);
    const t0 = performance.now();
    for (const id of ids) await admin.client('KILL', 'ID', id);
    while (b.ready) await tick();
    await b.whenReady(10_000);
    reconnects.push(performance.now() - t0);
    for (;;) {
      try {
        await modelOn(b, randomUUID());
        break;
      } catch {
        await tick();
      }
    }
    firstLoad.push(performance.now() - t0);
  }
  console.log('reconnect after CLIENT KILL of both connections (10 runs)');
  summary('  kill → ready again (commands + subscribed)', reconnects);
  summary('  kill → first uncached request served', firstLoad);

  // 4. Opening a scope on a near-cached context.
  const memory = new ContextStore();
  const hot = randomUUID();
  await modelOn(b, hot);
  memory.openScope(hot).close();
  const N = 200_000;
  for (const [label, open] of [
    ['in-memory openScope + close', () => memory.openScope(hot).close()],
    ['redis acquireScope (near-cache hit) + close', () => (b.acquireScope(hot) as ReturnType<ContextStore['openScope']>).close()],
  ] as const) {
    for (let i = 0; i < 10_000; i++) open();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) open();
    console.log(`${label.padEnd(44)} ${(((performance.now() - t0) * 1e6) / N).toFixed(0)} ns/op`);
  }
  await memory.close();
} finally {
  await Promise.all([a.close(), b.close()]);
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
  await admin.quit();
}
