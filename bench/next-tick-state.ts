/**
 * `npx tsx bench/next-tick-state.ts [options]`: a process-wide state that
 * costs a server 3–8 µs of CPU per request, and which of its servers are in it.
 *
 * Node 22's and 24's `process.nextTick` builds each tick as an object literal
 * with computed keys (`{ [async_id_symbol]: …, [trigger_async_id_symbol]: …,
 * [async_context_frame]: …, callback, args }`). The maps of that literal are
 * held only weakly; when a few full GCs run while no tick is queued they die,
 * the next ticks build new ones, and after a few generations the inline caches
 * of the literal's second to fifth keys end up MEGAMORPHIC: TurboFan then
 * compiles those definitions as runtime calls
 * (Runtime_DefineKeyedOwnPropertyInLiteral), and every tick (an HTTP request
 * makes seven) pays for it. Whether a process gets there follows its heap
 * timing, not the code of the route: on the bare route, two no-op listeners on
 * `process` (exit + beforeExit, as pino's asynchronous destination adds;
 * SIGTERM + SIGINT, as a graceful shutdown adds; or any two names) put most
 * servers there. Every bench server, like examples/server.ts, retains one tick
 * object first (examples/tick-object.ts), which keeps the maps; this tool's
 * servers do not, unless `--retain` is given.
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
 *   --retain            retain a tick object first, as every other bench server does
 */
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeFixtures, PROCESS_LISTENERS_ENV, RETAIN_TICK_ENV } from './fixtures.js';
import { load, measured, pinLoadGenerator, startServer } from './http.js';
import { literalStates } from './next-tick-feedback.js';
import { contenderById } from './registry.js';

const { values } = parseArgs({
  options: {
    row: { type: 'string', default: 'me-bare' },
    listeners: { type: 'string', default: '' },
    servers: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '3' },
    retain: { type: 'boolean', default: false },
  },
});
const contender = contenderById(values.row);
const fixtures = makeFixtures(100);
const pin = pinLoadGenerator(false);

console.log(`row ${contender.id}, listeners on process: ${values.listeners || 'none'}, tick object ${values.retain ? '' : 'not '}retained; ${pin.note}`);
const dir = mkdtempSync(join(tmpdir(), 'kuc-next-tick-'));
for (let i = 0; i < Number(values.servers); i++) {
  const file = join(dir, `server-${i}.txt`);
  const stdout = openSync(file, 'w');
  // A file, not a pipe: V8 prints through C stdio, which holds a pipe's last bytes until the process exits.
  const run = await startServer(contender, fixtures, ['--allow-natives-syntax'], pin.serverCpu, { env: { [PROCESS_LISTENERS_ENV]: values.listeners, [RETAIN_TICK_ENV]: values.retain ? '1' : '0' }, stdout });
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
