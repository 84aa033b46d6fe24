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
 * Run by bench/run.ts: `node --import tsx bench/ladder.ts --json <file> [--rounds n]`.
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { CONTENDERS, cleanups } from './contenders.js';
import { makeFixtures } from './fixtures.js';
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

const BATCH = 200;
const IN_FLIGHT = 8;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const jsonAt = argv.indexOf('--json');
  const roundsAt = argv.indexOf('--rounds');
  const rounds = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : 150;
  const fixtures = makeFixtures(100);
  const servers: { id: string; port: number; agent: Agent; close: () => Promise<void> }[] = [];
  for (const id of LADDER_IDS) {
    const contender = CONTENDERS.find((c) => c.id === id)!;
    const app = await contender.build(fixtures);
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    servers.push({
      id,
      port: (server.address() as AddressInfo).port,
      agent,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    });
  }
  const headers = fixtures.hsTokens.map((token) => ({ authorization: `Bearer ${token}` }));
  const get = (port: number, agent: Agent, i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/whoami', agent, headers: headers[i % headers.length] }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET /whoami answered ${res.statusCode}`));
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
        while (next < count) await get(s.port, s.agent, next++);
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
  const floor = samples.get('koa-als')!;
  const result: LadderResult = {
    batch: BATCH,
    rounds,
    steps: LADDER.map(({ id, adds }) => {
      const diffs = samples.get(id)!.map((x, i) => x - floor[i]!);
      const label = CONTENDERS.find((c) => c.id === id)!.label;
      return { id, label, adds, cpuMicrosAboveFloor: quantile(diffs, 0.5), p25: quantile(diffs, 0.25), p75: quantile(diffs, 0.75) };
    }),
  };
  for (const s of servers) {
    s.agent.destroy();
    await s.close();
  }
  for (const cleanup of cleanups) await cleanup();
  if (jsonAt >= 0) writeFileSync(argv[jsonAt + 1]!, JSON.stringify(result));
  for (const s of result.steps) {
    console.log(`${s.id.padEnd(18)} ${s.cpuMicrosAboveFloor.toFixed(2).padStart(7)} µs above koa-als (quartiles ${s.p25.toFixed(2)} – ${s.p75.toFixed(2)})`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
  process.exit(0);
}
