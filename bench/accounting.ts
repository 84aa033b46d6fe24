/**
 * Per-request accounting of each contender, in counts rather than seconds (so
 * it repeats exactly on a busy machine): the async resources Node creates per
 * request, by type (PROMISE, TickObject, …), and the heap bytes allocated per
 * request. Each contender runs in its own child process with a client in the
 * same process; the figures that matter are differences between contenders,
 * in which the client's own share cancels out.
 *
 * Bytes: the growth of the used heap over windows of {@link WINDOW} requests
 * in which no GC ran (the child has a young generation large enough for a
 * window; a GC observer discards the windows that saw one); the median over
 * those windows. Allocation is deterministic, so the windows agree to the byte
 * or two.
 *
 * Run by bench/run.ts, or alone:
 *   npx tsx bench/accounting.ts [--requests 2000] [--only id,id]
 */
import { createHook } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CONTENDERS, cleanups, pathOf } from './contenders.js';
import { contenderById } from './registry.js';
import { makeFixtures } from './fixtures.js';
import { median } from './stats.js';

export interface Account {
  id: string;
  requests: number;
  /** Async resources created per request, by type (client and server together). */
  resources: Record<string, number>;
  /** Heap bytes allocated per request (client and server together), or `null` if every window saw a GC. */
  bytes: number | null;
}

/** Requests per allocation window. */
const WINDOW = 100;

async function measure(id: string, requests: number): Promise<Account> {
  const contender = contenderById(id);
  const fixtures = makeFixtures(100);
  const app = await contender.build(fixtures);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const tokens = contender.tokens === 'rs' ? fixtures.rsTokens : fixtures.hsTokens;
  const headers = tokens.map((token) => ({ authorization: `Bearer ${token}` }));
  const get = (i: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: pathOf(contender), agent, headers: headers[i % headers.length] }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  // Warm-up: every token verified and cached, every context loaded, the JIT settled.
  for (let i = 0; i < 2_000; i++) if ((await get(i)) !== 200) throw new Error(`${id}: warm-up request ${i} failed`);

  let gcs = 0;
  const gcObserver = new PerformanceObserver((list) => (gcs += list.getEntries().length));
  gcObserver.observe({ entryTypes: ['gc'] });
  const windows: number[] = [];
  for (let w = 0; w < Math.max(1, Math.floor(requests / WINDOW)); w++) {
    // Let the previous window's GC observer entries arrive before reading the count.
    await new Promise((resolve) => setImmediate(resolve));
    const seen = gcs;
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < WINDOW; i++) await get(w * WINDOW + i);
    const after = process.memoryUsage().heapUsed;
    await new Promise((resolve) => setImmediate(resolve));
    if (gcs === seen) windows.push((after - before) / WINDOW);
  }
  gcObserver.disconnect();

  const counts: Record<string, number> = {};
  const hook = createHook({
    init(_asyncId, type) {
      counts[type] = (counts[type] ?? 0) + 1;
    },
  });
  hook.enable();
  for (let i = 0; i < requests; i++) await get(i);
  hook.disable();
  agent.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const cleanup of cleanups) await cleanup();
  const resources: Record<string, number> = {};
  for (const [type, n] of Object.entries(counts)) resources[type] = n / requests;
  return { id, requests, resources, bytes: windows.length === 0 ? null : median(windows) };
}

/** Total async resources per request. */
export function totalResources(account: Account): number {
  return Object.values(account.resources).reduce((sum, n) => sum + n, 0);
}

/** Measures each contender in its own child process (one at a time). Failures are reported and skipped. */
export function measureAccounts(ids: readonly string[], requests: number, log: (line: string) => void): Account[] {
  const accounts: Account[] = [];
  for (const id of ids) {
    const child = spawnSync(
      process.execPath,
      ['--max-semi-space-size=64', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', id, '--requests', String(requests)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000, env: { ...process.env, NODE_ENV: 'production' } },
    );
    if (child.status !== 0) {
      log(`accounting: ${id} failed (exit ${String(child.status)}); left out`);
      continue;
    }
    accounts.push(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Account);
  }
  return accounts;
}

const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const requests = Number(arg('--requests') ?? 2000);
  if (arg('--child') !== undefined) {
    const account = await measure(arg('--child')!, requests);
    process.stdout.write(JSON.stringify(account) + '\n');
    process.exit(0);
  }
  const ids = arg('--only')?.split(',') ?? CONTENDERS.filter((c) => c.unavailable === undefined).map((c) => c.id);
  for (const a of measureAccounts(ids, requests, console.error)) {
    console.log(`${a.id.padEnd(20)} async resources ${totalResources(a).toFixed(2)} (${Object.entries(a.resources).map(([t, n]) => `${t} ${n.toFixed(2)}`).join(', ')}), heap ${a.bytes === null ? 'GC in every window' : `${Math.round(a.bytes)} B`} per request`);
  }
}
