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
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeFixtures, PROCESS_LISTENERS_ENV } from './fixtures.js';
import { load, measured, pinLoadGenerator, startServer } from './http.js';
import { contenderById } from './registry.js';

const { values } = parseArgs({
  options: {
    row: { type: 'string', default: 'me-bare' },
    listeners: { type: 'string', default: '' },
    servers: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '3' },
  },
});
const contender = contenderById(values.row);
const fixtures = makeFixtures(100);
const pin = pinLoadGenerator(false);

/** The states of the literal's key definitions, in order: `MONOMORPHIC`, `MEGAMORPHIC`, … */
function literalStates(printed: string): string[] {
  return [...printed.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]!);
}

console.log(`row ${contender.id}, listeners on process: ${values.listeners || 'none'}; ${pin.note}`);
const dir = mkdtempSync(join(tmpdir(), 'kuc-next-tick-'));
for (let i = 0; i < Number(values.servers); i++) {
  const file = join(dir, `server-${i}.txt`);
  const stdout = openSync(file, 'w');
  // A file, not a pipe: V8 prints through C stdio, which holds a pipe's last bytes until the process exits.
  const run = await startServer(contender, fixtures, ['--allow-natives-syntax'], pin.serverCpu, { env: { [PROCESS_LISTENERS_ENV]: values.listeners }, stdout });
  const { child } = run;
  await load(run, fixtures, 50, 2);
  const round = await measured(run, fixtures, 50, Number(values.seconds), i);
  if (round.non2xx > 0 || round.errors > 0) throw new Error(`${contender.id}: ${round.non2xx} non-2xx, ${round.errors} errors`);
  child.send({ type: 'print-next-tick-feedback' });
  await new Promise((done) => setTimeout(done, 200));
  child.disconnect();
  await once(child, 'exit');
  closeSync(stdout);
  const states = literalStates(readFileSync(file, 'latin1'));
  if (states.length === 0) throw new Error(`server ${i + 1} printed no feedback for nextTick (${file})`);
  const slow = states.includes('MEGAMORPHIC');
  console.log(`server ${i + 1}: ${round.cpuMicrosPerRequest.toFixed(1)} µs/request; nextTick literal keys: ${states.join(' ')}${slow ? '  ← runtime path' : ''}`);
}
rmSync(dir, { recursive: true, force: true });
process.exit(0);
