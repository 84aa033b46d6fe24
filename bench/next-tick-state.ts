/**
 * `npx tsx bench/next-tick-state.ts [options]`: a process-wide state that
 * moves a server's CPU per request by ~3 µs, and which of its servers are in it.
 *
 * Node's `process.nextTick` builds each tick as an object literal with
 * computed keys (`{ [async_id_symbol]: …, [trigger_async_id_symbol]: …,
 * [async_context_frame]: …, callback, args }`). In some processes the inline
 * cache of the second key's definition ends up MEGAMORPHIC; TurboFan then
 * compiles every later definition in that literal as a runtime call
 * (Runtime_DefineKeyedOwnPropertyInLiteral), and every tick (an HTTP request
 * makes several) pays for it. Which processes end up there is decided early,
 * not by the code of the route: on the bare route, adding no-op listeners
 * under two new event names to `process` (exit + beforeExit, as pino's
 * asynchronous destination adds; SIGTERM + SIGINT, as a graceful shutdown
 * adds; or any two names) puts most servers there.
 *
 * Each server is a fresh `bench/server.ts <row>` child started with
 * `--allow-natives-syntax`, loaded for `--seconds`, its CPU per request taken,
 * then asked to print nextTick's feedback vector; the line per server gives
 * the state of the literal's key definitions and the CPU per request.
 *
 *   --row <id>          the bench row each server runs (default me-bare)
 *   --listeners <a,b>   event names given a no-op listener on `process` (default none)
 *   --servers <n>       fresh servers, one after the other (default 4)
 *   --seconds <s>       seconds of load per server after 2 s of warm-up (default 3)
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { FIXTURES_ENV, makeFixtures, PROCESS_LISTENERS_ENV } from './fixtures.js';
import { contenderById } from './registry.js';
import type { ServerMessage } from './server.js';

const { values } = parseArgs({
  options: {
    row: { type: 'string', default: 'me-bare' },
    listeners: { type: 'string', default: '' },
    servers: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '3' },
  },
});
const contender = contenderById(values.row);
const path = contender.path ?? '/whoami';
const fixtures = makeFixtures(100);
const requests = fixtures.hsTokens.map((token) => ({ method: 'GET' as const, path, headers: { authorization: `Bearer ${token}` } }));
const pinned = spawnSync('taskset', ['-a', '-cp', '0', String(process.pid)]).status === 0;

/** The states of the literal's key definitions, in order: `MONOMORPHIC`, `MEGAMORPHIC`, … */
function literalStates(printed: string): string[] {
  return [...printed.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]!);
}

function cpuMicros(child: ChildProcess): Promise<number> {
  const answer = new Promise<number>((resolve) => {
    child.once('message', (m: ServerMessage) => resolve(m.type === 'cpu' ? m.micros : NaN));
  });
  child.send({ type: 'cpu' });
  return answer;
}

console.log(`row ${contender.id}, listeners on process: ${values.listeners || 'none'}${pinned ? ' (load on CPU 0, server on CPU 1)' : ''}`);
const dir = mkdtempSync(join(tmpdir(), 'kuc-next-tick-'));
for (let i = 0; i < Number(values.servers); i++) {
  const file = join(dir, `server-${i}.txt`);
  const stdout = openSync(file, 'w');
  const child = fork(fileURLToPath(new URL('./server.ts', import.meta.url)), [contender.id], {
    execArgv: ['--import', 'tsx', '--allow-natives-syntax'],
    env: {
      ...process.env,
      NODE_ENV: 'production',
      [FIXTURES_ENV]: JSON.stringify({ hsSecret: fixtures.hsSecret, rsPublicKey: fixtures.rsPublicKey, users: fixtures.users }),
      [PROCESS_LISTENERS_ENV]: values.listeners,
    },
    // A file, not a pipe: V8 prints through C stdio, which holds a pipe's last bytes until the process exits.
    stdio: ['ignore', stdout, 'inherit', 'ipc'],
  });
  if (pinned) spawnSync('taskset', ['-a', '-cp', '1', String(child.pid)]);
  const [ready] = (await once(child, 'message')) as [ServerMessage];
  if (ready.type !== 'ready') throw new Error(`${contender.id}: ${JSON.stringify(ready)}`);
  const url = `http://127.0.0.1:${ready.port}`;
  await autocannon({ url, connections: 50, duration: 2, requests });
  const before = await cpuMicros(child);
  const result = await autocannon({ url, connections: 50, duration: Number(values.seconds), requests });
  const cpu = (await cpuMicros(child)) - before;
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${contender.id}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  child.send({ type: 'print-next-tick-feedback' });
  await new Promise((done) => setTimeout(done, 200));
  child.disconnect();
  await once(child, 'exit');
  closeSync(stdout);
  const states = literalStates(readFileSync(file, 'latin1'));
  if (states.length === 0) throw new Error(`server ${i + 1} printed no feedback for nextTick (${file})`);
  const slow = states.includes('MEGAMORPHIC');
  console.log(`server ${i + 1}: ${(cpu / result.requests.total).toFixed(1)} µs/request; nextTick literal keys: ${states.join(' ')}${slow ? '  ← runtime path' : ''}`);
}
rmSync(dir, { recursive: true, force: true });
process.exit(0);
