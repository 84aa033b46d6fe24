/**
 * (The example app's counter; bench/instructions.ts is the Node lines' one, on the built package: the two are to become one.)
 * Instructions per request, counted by valgrind's callgrind: a count of
 * machine instructions does not depend on what else the machine runs, so it
 * repeats on a shared machine where seconds drift by tens of percent.
 *
 * Each contender's server runs in a child process under callgrind; this
 * process is the client (outside valgrind, one keep-alive request at a time),
 * so the count is the server's alone, and a row's share of the bare route's
 * throughput on a CPU-bound server is the bare row's count over its own.
 * After a warm-up (every token verified and cached, the JIT settled) the
 * client tells the child on stdin to call `process.cpuUsage()`, whose libuv
 * function `uv_getrusage` callgrind zeroes its counters before, sends the
 * measured requests, then has it call `os.freemem()`, whose
 * `uv_get_free_memory` callgrind dumps the counters before: the dump holds
 * exactly the measured requests. Node runs `--single-threaded` (no concurrent
 * JIT or GC threads). Measured here: the same server counts within about 1 %
 * from run to run, but rows running nearly the same code differ by up to ±4 %
 * (V8's JIT and GC decisions), so a count bounds a small term rather than
 * ranks it. What callgrind does not count is the kernel's share (socket reads
 * and writes, a log line's write(2)). The child runs this file bundled by
 * esbuild (node_modules/.cache/kuc-bench/), not through tsx: under callgrind,
 * tsx's start-up alone takes minutes on a busy machine.
 *
 * `npx tsx bench/app-instructions.ts --only me-bare,me-kuc [--requests 1000]`, or
 * through `npm run bench:app`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cleanups, pathOf } from './contenders.js';
import { FIXTURES_ENV, makeFixtures, readServerFixtures, type LoadFixtures } from './fixtures.js';
import { contenderById } from './registry.js';

export interface InstructionCount {
  id: string;
  requests: number;
  /** Instructions the server executed per request (user space: JavaScript, V8, Node, libuv). */
  perRequest: number;
}

const WARMUP = 1_000;

/** Why callgrind cannot be used here, or `undefined` when it can. */
export function callgrindUnavailable(): string | undefined {
  const probe = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : 'valgrind is not installed (apt-get install -y valgrind)';
}

const root = fileURLToPath(new URL('..', import.meta.url));

/** This file and what it imports (the sources, the examples), as one ES module; packages stay imports. */
function bundleChild(): string {
  // The real path: the child's "am I the main module" check compares it with import.meta.url.
  const out = join(realpathSync(join(root, 'node_modules')), `.cache/kuc-bench/instructions-${process.pid}.mjs`);
  const built = spawnSync(
    join(root, 'node_modules/.bin/esbuild'),
    [fileURLToPath(import.meta.url), '--bundle', '--platform=node', '--format=esm', '--packages=external', '--log-level=error', `--outfile=${out}`],
    { encoding: 'utf8' },
  );
  if (built.status !== 0) throw new Error(`esbuild could not bundle bench/app-instructions.ts: ${built.stderr}`);
  return out;
}

/** The server child: listens, prints its port, then obeys `zero` / `dump` lines on stdin. */
async function child(id: string): Promise<void> {
  const app = await contenderById(id).build(readServerFixtures());
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  console.log(`port ${(server.address() as AddressInfo).port}`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'zero') process.cpuUsage(); // callgrind zeroes its counters here (uv_getrusage)
    else if (line === 'dump') freemem(); // …and dumps them here (uv_get_free_memory)
    console.log(line);
  }
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const cleanup of cleanups) await cleanup();
}

/** One contender's server under callgrind, loaded from here: its instructions per measured request. */
async function countOne(id: string, fixtures: LoadFixtures, requests: number, script: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kuc-callgrind-'));
  const { hsSecret, rsPublicKey, users } = fixtures;
  const out = join(dir, 'callgrind.out');
  const proc = spawn(
    'valgrind',
    [
      '--tool=callgrind', `--callgrind-out-file=${out}`, '--zero-before=uv_getrusage', '--dump-before=uv_get_free_memory',
      process.execPath, '--single-threaded', script, '--child', id,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production', [FIXTURES_ENV]: JSON.stringify({ hsSecret, rsPublicKey, users }) } },
  );
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done === true) throw new Error(`${id}: the server under callgrind exited: ${stderr.split('\n').slice(-8).join(' | ')}`);
    return value as string;
  };
  const command = async (word: string): Promise<void> => {
    proc.stdin.write(`${word}\n`);
    while ((await nextLine()) !== word);
  };
  try {
    let first = await nextLine();
    while (!first.startsWith('port ')) first = await nextLine();
    const port = Number(first.slice(5));
    const contender = contenderById(id);
    const path = pathOf(contender);
    const headers = (contender.tokens === 'rs' ? fixtures.rsTokens : fixtures.hsTokens).map((token) => ({ authorization: `Bearer ${token}` }));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (i: number): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, agent, headers: headers[i % headers.length] }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    for (let i = 0; i < WARMUP; i++) if ((await get(i)) !== 200) throw new Error(`${id}: warm-up request ${i} was not answered 200`);
    await command('zero');
    for (let i = 0; i < requests; i++) if ((await get(i)) !== 200) throw new Error(`${id}: request ${i} was not answered 200`);
    await command('dump');
    agent.destroy();
    proc.stdin.end();
    const code = await exited;
    if (code !== 0) throw new Error(`${id}: the server under callgrind exited with ${String(code)}`);
    // callgrind.out.1 is the dump before os.freemem(); callgrind.out itself is what ran after it.
    const dumps = readdirSync(dir).filter((f) => /^callgrind\.out\.\d+$/.test(f));
    if (dumps.length !== 1) throw new Error(`${id}: expected one callgrind dump, found ${dumps.length}`);
    const summary = /^totals:\s+(\d+)/m.exec(readFileSync(join(dir, dumps[0]!), 'utf8'));
    if (summary === null) throw new Error(`${id}: no totals line in the callgrind dump`);
    return Number(summary[1]) / requests;
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Counts each contender's server under callgrind, one at a time. Failures are reported and left out. */
export async function countInstructions(ids: readonly string[], requests: number, log: (line: string) => void): Promise<InstructionCount[]> {
  const fixtures = makeFixtures(100);
  const script = bundleChild();
  const counts: InstructionCount[] = [];
  try {
    for (const id of ids) {
      try {
        const perRequest = await countOne(id, fixtures, requests, script);
        counts.push({ id, requests, perRequest });
        log(`instructions: ${id} ${Math.round(perRequest).toLocaleString('en-US')} per request (server only)`);
      } catch (error) {
        log(`instructions: ${id} failed, left out: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  } finally {
    rmSync(script, { force: true });
  }
  return counts;
}

const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const requests = Number(arg('--requests') ?? 1000);
  if (arg('--child') !== undefined) {
    await child(arg('--child')!);
    process.exit(0);
  }
  const reason = callgrindUnavailable();
  if (reason !== undefined) {
    console.error(reason);
    process.exit(2);
  }
  const ids = arg('--only')?.split(',') ?? [];
  if (ids.length === 0) {
    console.error('--only <ids> names the contenders to count');
    process.exit(2);
  }
  await countInstructions(ids, requests, console.log);
}
