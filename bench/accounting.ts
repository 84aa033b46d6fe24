/**
 * Per-request accounting of each contender, in counts rather than seconds (so
 * it is repeatable on a busy machine): async resources Node creates per
 * request, by type (PROMISE, TickObject, …), and heap bytes allocated per
 * request (from V8's allocation counter when the runtime has one, else the
 * growth of the used heap with the GC held off by a large young generation).
 * Each contender runs in its own child process; the figures are differences
 * from bare Koa, so the client's own work cancels out.
 *
 *   npx tsx bench/accounting.ts [--requests 2000] [--out docs/benchmarks-accounting.md]
 */
import { createHook } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { getHeapStatistics } from 'node:v8';
import { CONTENDERS, cleanups } from './contenders.js';
import { makeFixtures } from './fixtures.js';

interface Account {
  id: string;
  requests: number;
  resources: Record<string, number>;
  /** Heap bytes allocated per request, or `null` when a GC ran during the window (then the growth is not the allocation). */
  bytes: number | null;
  cpuMicros: number;
}

const ROUTE = '/whoami';

async function measure(id: string, requests: number): Promise<Account> {
  const contender = CONTENDERS.find((c) => c.id === id);
  if (contender === undefined) throw new Error(`unknown contender ${id}`);
  const fixtures = makeFixtures(100);
  const app = await contender.build(fixtures);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const tokens = contender.tokens === 'rs' ? fixtures.rsTokens : fixtures.hsTokens;
  const get = (i: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: ROUTE, agent, headers: { authorization: `Bearer ${tokens[i % tokens.length]!}` } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
  // Warm up: every token verified and cached, every context loaded, JIT settled.
  for (let i = 0; i < 2_000; i++) if ((await get(i)) !== 200) throw new Error(`${id}: warm-up request ${i} failed`);
  const counts: Record<string, number> = {};
  const hook = createHook({
    init(_id, type) {
      counts[type] = (counts[type] ?? 0) + 1;
    },
  });
  // Allocation: the used heap's growth over a window with no GC (the child runs
  // with a young generation large enough for it; a GC observer tells if one ran).
  let gcs = 0;
  const gcObserver = new PerformanceObserver((list) => (gcs += list.getEntries().length));
  gcObserver.observe({ entryTypes: ['gc'] });
  const heap0 = getHeapStatistics().used_heap_size;
  for (let i = 0; i < requests; i++) await get(i);
  const heap1 = getHeapStatistics().used_heap_size;
  await new Promise((r) => setImmediate(r));
  gcObserver.disconnect();
  const bytes = gcs === 0 ? (heap1 - heap0) / requests : null;
  const cpu0 = process.cpuUsage();
  hook.enable();
  for (let i = 0; i < requests; i++) await get(i);
  hook.disable();
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const cleanup of cleanups) await cleanup();
  const resources: Record<string, number> = {};
  for (const [type, n] of Object.entries(counts)) resources[type] = n / requests;
  return { id, requests, resources, bytes, cpuMicros: (cpu.user + cpu.system) / requests };
}

function table(accounts: Account[]): string {
  const base = accounts.find((a) => a.id === 'bare-koa')!;
  const types = [...new Set(accounts.flatMap((a) => Object.keys(a.resources)))].sort();
  const fmt = (n: number): string => (Math.abs(n) < 0.005 ? '0' : n.toFixed(2));
  const lines = [
    `| contender | ${types.join(' | ')} | total async resources | above bare Koa | heap bytes / request | above bare Koa |`,
    `|---|${types.map(() => '---:').join('|')}|---:|---:|---:|---:|`,
  ];
  const total = (a: Account): number => Object.values(a.resources).reduce((s, n) => s + n, 0);
  for (const a of accounts) {
    const bytes = a.bytes === null ? 'GC ran' : String(Math.round(a.bytes));
    const above = a.bytes === null || base.bytes === null ? '—' : String(Math.round(a.bytes - base.bytes));
    lines.push(`| ${a.id} | ${types.map((t) => fmt(a.resources[t] ?? 0)).join(' | ')} | ${fmt(total(a))} | ${fmt(total(a) - total(base))} | ${bytes} | ${above} |`);
  }
  return lines.join('\n');
}

const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

if (arg('--child') !== undefined) {
  const account = await measure(arg('--child')!, Number(arg('--requests') ?? 2000));
  process.stdout.write(JSON.stringify(account) + '\n');
  process.exit(0);
} else {
  const requests = Number(arg('--requests') ?? 2000);
  const ids = (arg('--only')?.split(',') ?? ['bare-koa', 'koa-als', 'kuc-hs256-cache', 'kuc-hs256-nocache', 'kuc-rs256-nocache', 'kuc-redis-warm']);
  const accounts: Account[] = [];
  for (const id of ids) {
    const child = spawnSync(process.execPath, ['--max-semi-space-size=512', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', id, '--requests', String(requests)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 300_000,
    });
    if (child.status !== 0) {
      console.error(`${id}: failed (exit ${String(child.status)}); skipped`);
      continue;
    }
    accounts.push(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Account);
    console.error(`${id}: done`);
  }
  const md = [
    '# Per-request accounting',
    '',
    `Generated by \`npx tsx bench/accounting.ts\` (${requests} sequential keep-alive requests per contender after 2 000 warm-up requests, ` +
      `Node ${process.version}). Async resources are counted with an \`async_hooks\` init hook over the whole process, so the ` +
      'client side is included and cancels out in the "above bare Koa" column. These are counts, not timings: they do not ' +
      'depend on how busy the machine is.',
    '',
    table(accounts),
    '',
  ].join('\n');
  const out = arg('--out');
  if (out !== undefined) writeFileSync(out, md);
  process.stdout.write(md);
}
