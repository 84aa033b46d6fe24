/**
 * `npm run bench:instructions`: instructions per request, counted by
 * valgrind's callgrind, for bare Koa, Koa + AsyncLocalStorage.run and this
 * middleware (warm token cache), so the ratios do not move with the
 * machine's speed the way req/s does.
 *
 * Each contender's server (bench/server.ts, the built package) runs under
 * `valgrind --tool=callgrind` twice: `--requests` and twice as many
 * sequential keep-alive requests after the same warm-up, sent from this
 * (uninstrumented) process. Per request = (I(2n) − I(n)) / n: start-up,
 * warm-up and shutdown cancel out. `--node` picks the Node binary (default:
 * this one), so other lines can be counted beside the primary one:
 *
 *   npm run bench:instructions -- --node node_modules/.cache/node-lines/22.23.5/bin/node
 *
 * Prints one JSON line (and a table); docs/benchmarks.md quotes the results.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
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
    requests: { type: 'string', default: '1500' },
    warmup: { type: 'string', default: '1500' },
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

/** Runs one contender under callgrind, sends `warmup` then `count` requests, returns the instructions counted. */
async function count(id: string, fixtures: LoadFixtures, total: number): Promise<number> {
  const env = { ...process.env, NODE_ENV: 'production', [LIB_ENV]: library, [FIXTURES_ENV]: JSON.stringify({ hsSecret: fixtures.hsSecret, rsPublicKey: fixtures.rsPublicKey, users: fixtures.users }) };
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', '--callgrind-out-file=/dev/null', node, '--import', 'tsx', fileURLToPath(new URL('server.ts', import.meta.url)), id],
    { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: ServerMessage) => (m.type === 'ready' ? resolve(m.port) : m.type === 'error' ? reject(new Error(m.message)) : undefined));
    child.on('exit', (code) => reject(new Error(`${id} exited ${code} before listening:\n${stderr}`)));
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const tokens = fixtures.hsTokens;
  for (let i = 0; i < warmup + total; i++) {
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
  agent.destroy();
  child.disconnect();
  await exited;
  const match = /Collected\s*:\s*(\d+)/.exec(stderr);
  if (match === null) throw new Error(`${id}: no callgrind total in:\n${stderr}`);
  return Number(match[1]);
}

const fixtures = makeFixtures(100);
const perRequest: Record<string, number> = {};
for (const id of ids) {
  const small = await count(id, fixtures, n);
  const large = await count(id, fixtures, 2 * n);
  perRequest[id] = Math.round((large - small) / n);
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
