/**
 * What each read consistency costs, against a real Redis (REDIS_URL or
 * 127.0.0.1:6379): 20 users, 20 concurrent workers each opening scopes of a
 * random user on one store (`runAsUser` + `getUserModel`, no HTTP) for
 * `KUC_BENCH_MS` (default 2 000) ms per mode, after a 300 ms warm-up of each; reports scopes per second,
 * p50 / p99 latency and Redis reads per scope for
 *
 *   - `'available'` (revalidateInterval 5 s), the default;
 *   - `'strict'` with `maxStaleness` 250 ms (the default bound);
 *   - `revalidateInterval: 0`: every scope read from Redis, by a read sent
 *     after it started (linearizable reads).
 *
 *   npx tsx bench/redis-consistency-modes.bench.ts
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { configureUser, getUserModel, runAsUser } from '../src/index.js';
import { RedisContextStore, type RedisContextStoreOptions } from '../src/redis.js';

const url = process.env['REDIS_URL'] || 'redis://127.0.0.1:6379';
const DURATION_MS = Number(process.env['KUC_BENCH_MS'] ?? 2_000);
const USERS = 20;
const WORKERS = 20;

const modes: [string, Partial<RedisContextStoreOptions>][] = [
  ["available (default)", {}],
  ["strict, maxStaleness 250 ms", { consistency: 'strict' }],
  ['strict, revalidateInterval 0', { consistency: 'strict', revalidateInterval: 0 }],
];

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const keyPrefix = `kuc:bench:${randomUUID()}:`;
const encryptionKey = randomBytes(32);
const users = Array.from({ length: USERS }, () => randomUUID());

/** Scopes of random users for `ms` on a store with `options`: latencies and Redis reads. */
async function measure(options: Partial<RedisContextStoreOptions>, ms: number): Promise<{ latencies: number[]; loads: number }> {
  const store = new RedisContextStore({ redis: url, keyPrefix, encryptionKey, ...options });
  try {
    if (!(await store.whenReady())) throw new Error(`Redis not reachable at ${url}`);
    for (const u of users) await runAsUser(u, () => configureUser({ provider: 'OpenAI', model: `m:${u}` }), { store });
    const loadsBefore = store.stats.loads;
    const latencies: number[] = [];
    const until = performance.now() + ms;
    await Promise.all(Array.from({ length: WORKERS }, async () => {
      while (performance.now() < until) {
        const user = users[Math.floor(Math.random() * USERS)]!;
        const t0 = performance.now();
        await runAsUser(user, () => getUserModel(), { store });
        latencies.push(performance.now() - t0);
      }
    }));
    return { latencies, loads: store.stats.loads - loadsBefore };
  } finally {
    for (const u of users) await store.deleteContext(u).catch(() => false);
    await store.close();
  }
}

console.log(`read cost per consistency mode: ${USERS} users, ${WORKERS} workers, ${DURATION_MS} ms each after a warm-up (${url})`);
for (const [, options] of modes) await measure(options, 300);
for (const [label, options] of modes) {
  const { latencies, loads } = await measure(options, DURATION_MS);
  console.log(`  ${label.padEnd(30)} ${Math.round(latencies.length / (DURATION_MS / 1_000)).toString().padStart(7)} scopes/s  ` +
    `p50 ${pct(latencies, 50).toFixed(3)} ms  p99 ${pct(latencies, 99).toFixed(3)} ms  ` +
    `${(loads / latencies.length).toFixed(3)} Redis reads per scope`);
}
