/**
 * The gap to the AsyncLocalStorage floor, step by step, measured inside one
 * process: the ALS-based contenders (koa-als, the step-* servers and the
 * middleware) listen side by side, and a keep-alive client in the same process
 * loads them in turn, a small batch each, many times over. Every step sees
 * the same machine within milliseconds of the others and none shares a CPU
 * with another server process, so the differences between them are steady to
 * about a microsecond even on a machine whose speed drifts from second to
 * second. The client's CPU is included and is the same for every server, so
 * it cancels out of the differences.
 *
 * Bare Koa is not in this run: once any AsyncLocalStorage is entered, every
 * promise in the process pays the hooks, so bare Koa can only be measured in
 * a process of its own (the floor step comes from the HTTP paired rounds).
 *
 * Run by bench/run.ts: `node --import tsx bench/ladder.ts --json <file> [--rounds n]`; by bench/app.ts
 * with `--ids a,b,c` (any rows, each measured against the one before it; `c@a`: c against a).
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { cleanups, pathOf } from './contenders.js';
import { makeFixtures, RETAIN_TICK_ENV, type LoadFixtures } from './fixtures.js';
import { retainTickObject } from '../examples/tick-object.js';
import { contenderById } from './registry.js';
import { quantile } from './stats.js';

/** The rows, in order, from the floor up; each adds one piece of work to the one before. */
const LADDER: readonly { id: string; adds: string }[] = [
  { id: 'koa-als', adds: 'AsyncLocalStorage.run around the rest of the chain (the floor of any ALS-based context)' },
  { id: 'step-close', adds: 'a reaction on the rest of the chain to close the scope afterwards (one promise)' },
  { id: 'step-token', adds: 'reading the Bearer token and a hit in the verified-token cache' },
  { id: 'step-scope', adds: 'the store lookup (sliding TTL) and a leased Scope, through runAsUser(); reads through getUserProvider()' },
  { id: 'kuc-hs256-cache', adds: "the middleware's own work: ctx.state (a copy of the claims, userUuid), checks of its options" },
];

export const LADDER_IDS: readonly string[] = LADDER.map((step) => step.id);

export interface LadderResult {
  /** Requests per batch, batches per server. */
  batch: number;
  rounds: number;
  /** Per server: median over rounds of (its CPU per request − koa-als's in the same round), µs; and the spread. */
  steps: { id: string; label: string; adds: string; cpuMicrosAboveFloor: number; p25: number; p75: number }[];
}

export const BATCH = 200;
const IN_FLIGHT = 8;

/**
 * Loads the servers of `ids` side by side in this process, `rounds` times a
 * batch each (the order rotating every round), after a warm-up; per id, its
 * CPU per request (µs, client included) in every round.
 */
export async function ladderSamples(ids: readonly string[], fixtures: LoadFixtures, rounds: number): Promise<Map<string, number[]>> {
  const servers: { id: string; port: number; path: string; agent: Agent; close: () => Promise<void> }[] = [];
  for (const id of ids) {
    const contender = contenderById(id);
    const app = await contender.build(fixtures);
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    servers.push({
      id,
      port: (server.address() as AddressInfo).port,
      path: pathOf(contender),
      agent,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    });
  }
  const headers = fixtures.hsTokens.map((token) => ({ authorization: `Bearer ${token}` }));
  const get = (s: (typeof servers)[number], i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: s.port, path: s.path, agent: s.agent, headers: headers[i % headers.length] }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${s.id}: GET ${s.path} answered ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  /** `count` requests, IN_FLIGHT at a time; the CPU time of this process per request, µs. */
  async function batch(s: (typeof servers)[number], count: number): Promise<number> {
    const start = process.cpuUsage();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < count) await get(s, next++);
      }),
    );
    const used = process.cpuUsage(start);
    return (used.user + used.system) / count;
  }
  for (const s of servers) await batch(s, 3_000); // warm-up: caches filled, JIT settled
  const samples = new Map<string, number[]>(servers.map((s) => [s.id, []]));
  for (let r = 0; r < rounds; r++) {
    // Rotate the order so no server always runs first after the previous round.
    for (let k = 0; k < servers.length; k++) {
      const s = servers[(k + r) % servers.length]!;
      samples.get(s.id)!.push(await batch(s, BATCH));
    }
  }
  for (const s of servers) {
    s.agent.destroy();
    await s.close();
  }
  for (const cleanup of cleanups) await cleanup();
  return samples;
}

/** Per row: the median over rounds of (its CPU per request − the floor's in the same round), and the quartiles. */
export function aboveFloor(samples: ReadonlyMap<string, number[]>, id: string, floorId: string): { median: number; p25: number; p75: number } {
  const floor = samples.get(floorId)!;
  const diffs = samples.get(id)!.map((x, i) => x - floor[i]!);
  return { median: quantile(diffs, 0.5), p25: quantile(diffs, 0.25), p75: quantile(diffs, 0.75) };
}

/** One row of a `--ids` ladder: its CPU per request above the row before it, in the same rounds. */
export interface RowAbove {
  id: string;
  aboveBefore: number;
  p25: number;
  p75: number;
}

/**
 * Per row after the first: its CPU per request minus the row before's (or its
 * base's, for a row written `id@base`), same rounds (median, quartiles).
 */
export function stepwise(samples: ReadonlyMap<string, number[]>, rows: readonly string[]): RowAbove[] {
  const ids = rows.map((row) => row.split('@')[0]!);
  return rows.slice(1).map((row, i) => {
    const id = ids[i + 1]!;
    const d = aboveFloor(samples, id, row.split('@')[1] ?? ids[i]!);
    return { id, aboveBefore: d.median, p25: d.p25, p75: d.p75 };
  });
}

async function main(): Promise<void> {
  // As every bench server (bench/server.ts) and examples/server.ts: process.nextTick's tick maps kept, so no
  // row is measured in the state that loses them (examples/tick-object.ts).
  if (process.env[RETAIN_TICK_ENV] !== '0') retainTickObject();
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const rounds = Number(arg('--rounds') ?? 150);
  const json = arg('--json');
  const rows = arg('--ids')?.split(',');
  if (rows !== undefined) {
    // Any rows (e.g. the example app's): each against the row before it, or `id@base` against its base.
    const steps = stepwise(await ladderSamples(rows.map((row) => row.split('@')[0]!), makeFixtures(100), rounds), rows);
    if (json !== undefined) writeFileSync(json, JSON.stringify({ batch: BATCH, rounds, steps }));
    for (const s of steps) console.log(`${s.id.padEnd(18)} ${s.aboveBefore.toFixed(2).padStart(7)} µs above the row before (quartiles ${s.p25.toFixed(2)} – ${s.p75.toFixed(2)})`);
    return;
  }
  const samples = await ladderSamples(LADDER_IDS, makeFixtures(100), rounds);
  const result: LadderResult = {
    batch: BATCH,
    rounds,
    steps: LADDER.map(({ id, adds }) => {
      const d = aboveFloor(samples, id, 'koa-als');
      return { id, label: contenderById(id).label, adds, cpuMicrosAboveFloor: d.median, p25: d.p25, p75: d.p75 };
    }),
  };
  if (json !== undefined) writeFileSync(json, JSON.stringify(result));
  for (const s of result.steps) {
    console.log(`${s.id.padEnd(18)} ${s.cpuMicrosAboveFloor.toFixed(2).padStart(7)} µs above koa-als (quartiles ${s.p25.toFixed(2)} – ${s.p75.toFixed(2)})`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
  process.exit(0);
}
