/**
 * `npm run bench:instructions`: instructions per request, counted by
 * valgrind's callgrind, for bare Koa, Koa + AsyncLocalStorage.run and this
 * middleware (warm token cache), so the ratios do not move with the
 * machine's speed the way req/s does.
 *
 * Each contender's server (bench/server.ts, the built package) runs under
 * `valgrind --tool=callgrind`; this (uninstrumented) process sends
 * `--warmup` sequential keep-alive requests, asks callgrind for a dump
 * (`callgrind_control -d`), sends `--requests` more and asks for a second
 * dump: the second dump holds exactly the measured requests (every thread of
 * the server, so background compilation and GC count too), divided by their
 * number. `--node` picks the Node binary (default: this one), so other lines
 * can be counted beside the primary one:
 *
 *   npm run bench:instructions -- --node node_modules/.cache/node-lines/22.23.5/bin/node
 *
 * Prints one JSON line (and progress on stderr); docs/benchmarks.md quotes it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LIB_ENV } from './contenders.js';
import { FIXTURES_ENV, makeFixtures, type LoadFixtures } from './fixtures.js';
import type { ServerMessage } from './server.js';

const { values } = parseArgs({
  options: {
    node: { type: 'string' },
    requests: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '2000' },
    only: { type: 'string', default: 'bare-koa,koa-als,kuc-hs256-cache' },
  },
});
const root = join(import.meta.dirname, '..');
const node = values.node ?? process.execPath;
const n = Number(values.requests);
const warmup = Number(values.warmup);
const ids = values.only.split(',');
const library = join(root, 'dist/esm/index.js');
if (!existsSync(library)) throw new Error(`${library} does not exist: run npm run build first`);

/** Sends `count` sequential requests (tokens of users in turn) over one keep-alive connection. */
async function send(id: string, port: number, agent: Agent, tokens: readonly string[], count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/whoami', agent, headers: { authorization: `Bearer ${tokens[i % tokens.length]!}` } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${id}: HTTP ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  }
}

/** Asks callgrind in `pid` for a dump; resolves once it is written (the server must be busy to notice: send requests meanwhile). */
function dump(pid: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`callgrind_control -d exited ${code}`))));
  });
}

/** The instructions in one callgrind dump file (its `summary:` or `totals:` line). */
function instructionsIn(file: string): number {
  const match = /^(?:summary|totals):\s*(\d+)/m.exec(readFileSync(file, 'utf8'));
  if (match === null) throw new Error(`no summary in ${file}`);
  return Number(match[1]);
}

/** Runs one contender under callgrind: warm-up, then the measured requests between two dumps; instructions per request. */
async function perRequestOf(id: string, fixtures: LoadFixtures): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kuc-callgrind-'));
  const env = { ...process.env, NODE_ENV: 'production', [LIB_ENV]: library, [FIXTURES_ENV]: JSON.stringify({ hsSecret: fixtures.hsSecret, rsPublicKey: fixtures.rsPublicKey, users: fixtures.users }) };
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'cg.out')}`, node, '--import', 'tsx', fileURLToPath(new URL('server.ts', import.meta.url)), id],
    { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.on('message', (m: ServerMessage) => (m.type === 'ready' ? resolve(m.port) : m.type === 'error' ? reject(new Error(m.message)) : undefined));
      child.on('exit', (code) => reject(new Error(`${id} exited ${code} before listening:\n${stderr}`)));
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const tokens = fixtures.hsTokens;
    await send(id, port, agent, tokens, warmup);
    // Each dump is taken while requests flow (an idle server would not answer):
    // a handful of requests around each boundary, out of `n`.
    const dumps = (): string[] =>
      readdirSync(dir)
        .filter((f) => /^cg\.out\.\d+$/.test(f))
        .sort((a, b) => Number(a.split('.').at(-1)) - Number(b.split('.').at(-1)));
    // The dump happens during one of the k requests sent while waiting for it:
    // count half of them into the window (at most k / 2 off, reported).
    const waitFor = async (files: number): Promise<number> => {
      let k = 0;
      while (dumps().length < files) {
        await send(id, port, agent, tokens, 1);
        k++;
      }
      return k;
    };
    const first = dump(child.pid!);
    const k1 = await waitFor(1);
    await first;
    await send(id, port, agent, tokens, n);
    const second = dump(child.pid!);
    const k2 = await waitFor(2);
    await second;
    agent.destroy();
    const requests = n + (k1 + k2) / 2;
    console.error(`[instructions] ${id}: window of ${n} requests + ${k1} / ${k2} around the dumps`);
    return Math.round(instructionsIn(join(dir, dumps()[1]!)) / requests);
  } finally {
    child.disconnect();
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const fixtures = makeFixtures(100);
const perRequest: Record<string, number> = {};
for (const id of ids) {
  perRequest[id] = await perRequestOf(id, fixtures);
  console.error(`[instructions] ${id}: ${perRequest[id]!.toLocaleString('en')} instructions per request`);
}
const version = (await new Promise<string>((resolve) => {
  const c = spawn(node, ['-v']);
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.on('exit', () => resolve(out.trim()));
}));
const bare = perRequest['bare-koa'];
const ratios = Object.fromEntries(Object.entries(perRequest).map(([id, ir]) => [id, bare === undefined ? null : Math.round((bare / ir) * 1000) / 10]));
console.error(`[instructions] Node ${version}: % of bare Koa (instructions) ${JSON.stringify(ratios)}`);
console.log(JSON.stringify({ node: version, requests: n, warmup, perRequest, percentOfBare: ratios }));
