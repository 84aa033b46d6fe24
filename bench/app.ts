/**
 * `npm run bench:app`: the example app's `GET /me/context` against a bare
 * Koa route answering the same JSON, term by term (the rows of
 * bench/app-contenders.ts), three ways:
 *
 * - HTTP rounds (bench/http.ts): solo rounds, one server at a time on its own
 *   CPU, alternating, each row against the bare route's round (the headline:
 *   a server's throughput alone, as a user measures it); and paired rounds,
 *   each loaded at the same time as the bare route on the same CPU;
 * - the in-process ladder (bench/ladder.ts `--ids`): every row's CPU per
 *   request minus the row before's, in the same rounds;
 * - instructions per request under callgrind (bench/app-instructions.ts): counts,
 *   the same on a busy machine as on an idle one.
 *
 * Writes bench/app-results.json and the section "The example app" of
 * docs/benchmarks.md (`--out <dir>`: both there instead). `--help` for the options.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { APP_BASELINE_ID, APP_LADDER } from './app-contenders.js';
import { makeFixtures } from './fixtures.js';
import { describeLoadGenerator, pinLoadGenerator, runHttp, type ContenderResult } from './http.js';
import { describeHost, duringHost, type HostRecord } from './host.js';
import { callgrindUnavailable, countInstructions, type InstructionCount } from './app-instructions.js';
import type { RowAbove } from './ladder.js';
import { appMarkdown, type AppResults } from './report.js';

/** The rows loaded over HTTP with the bare route when `--paired` is not given. */
const DEFAULT_PAIRED = 'me-kuc,app-errors,app-logged,app-logged-debug,app-koa-router';

const HELP = `npm run bench:app -- [options]
  --rounds <n>          solo HTTP rounds, one server at a time, alternating (default 12; 0: no HTTP)
  --paired-rounds <n>   paired HTTP rounds of each paired row with the bare route (default 6; 0: none)
  --paired <ids>        the rows loaded over HTTP with the bare route (default ${DEFAULT_PAIRED})
  --duration <s>        seconds per round (default 3)
  --ladder-rounds <n>   rounds of the in-process ladder (default 60; 0: none)
  --requests <n>        requests counted under callgrind per row (default 300; 0: none)
  --out <dir>           write app-results.json and benchmarks.md there
  --no-pin              do not pin the load generator and the servers to separate CPUs
  --no-keep-awake       let the pinned load generator sleep between responses (bench/http.ts keepAwake)`;

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'paired-rounds': { type: 'string' },
    paired: { type: 'string' },
    duration: { type: 'string' },
    'ladder-rounds': { type: 'string' },
    requests: { type: 'string' },
    out: { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    'no-keep-awake': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const soloRounds = Number(values.rounds ?? 12);
const pairedRounds = Number(values['paired-rounds'] ?? 6);
const duration = Number(values.duration ?? 3);
const ladderRounds = Number(values['ladder-rounds'] ?? 60);
const requests = Number(values.requests ?? 300);
const root = fileURLToPath(new URL('..', import.meta.url));
const paths = values.out === undefined
  ? { json: join(root, 'bench/app-results.json'), md: join(root, 'docs/benchmarks.md') }
  : { json: join(values.out, 'app-results.json'), md: join(values.out, 'benchmarks.md') };
const log = (line: string): void => console.log(`[bench:app] ${line}`);
const ids = APP_LADDER.map((c) => c.id);
log(`load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

// --- HTTP rounds: solo (alternating), then paired -------------------------
let http: ContenderResult[] = [];
let loadGenerator: string | undefined;
let host: HostRecord | undefined;
if (soloRounds > 0) {
  const pin = pinLoadGenerator(values['no-pin']);
  const generator = { keepAwake: !values['no-keep-awake'], serverCpu: pin.serverCpu };
  loadGenerator = describeLoadGenerator(pin.note, generator);
  log(loadGenerator);
  const chosen = new Set([APP_BASELINE_ID, ...(values.paired ?? DEFAULT_PAIRED).split(',')]);
  const contenders = APP_LADDER.filter((c) => chosen.has(c.id));
  [http, host] = await duringHost(() => runHttp(contenders, APP_BASELINE_ID, makeFixtures(100), {
    connections: 50, warmup: 2, duration, rounds: soloRounds, pairedRounds, serverExecArgv: [], ...generator, log,
  }));
  log(`host: ${describeHost(host)}`);
}

// --- in-process ladder ----------------------------------------------------
let ladder: RowAbove[] = [];
if (ladderRounds > 0) {
  const file = join(mkdtempSync(join(tmpdir(), 'kuc-bench-app-')), 'ladder.json');
  // The bare route needs a process without AsyncLocalStorage; a row with a base is measured against it (`id@base`).
  const rows = APP_LADDER.filter((c) => c.id !== APP_BASELINE_ID).map((c) => (c.base === undefined ? c.id : `${c.id}@${c.base}`));
  log(`ladder: ${rows.join(' → ')}, ${ladderRounds} rounds`);
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./ladder.ts', import.meta.url)), '--ids', rows.join(','), '--rounds', String(ladderRounds), '--json', file], {
    // The example's log lines go to stdout: a pipe read and dropped here, as a log collector would.
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  child.stdout!.resume();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`bench/ladder.ts exited with ${String(code)}`);
  ladder = (JSON.parse(readFileSync(file, 'utf8')) as { steps: RowAbove[] }).steps;
}

// --- instructions ---------------------------------------------------------
let instructions: InstructionCount[] = [];
let instructionsNote: string | undefined;
if (requests > 0) {
  instructionsNote = callgrindUnavailable();
  if (instructionsNote === undefined) instructions = await countInstructions(ids, requests, log);
  else log(`instructions not counted: ${instructionsNote}`);
}

const results: AppResults = {
  date: new Date().toISOString(),
  loadAverage: loadavg(),
  rows: APP_LADDER.map(({ id, label, adds, base }) => ({ id, label, adds, ...(base !== undefined ? { base } : {}) })),
  http,
  ...(loadGenerator !== undefined ? { loadGenerator } : {}),
  ...(host !== undefined ? { host } : {}),
  ladder,
  instructions,
  ...(instructionsNote !== undefined ? { instructionsNote } : {}),
  // What an earlier run found stays until someone edits it.
  ...(existsSync(paths.json) ? { notes: (JSON.parse(readFileSync(paths.json, 'utf8')) as AppResults).notes ?? [] } : {}),
};
mkdirSync(join(paths.json, '..'), { recursive: true });
writeFileSync(paths.json, `${JSON.stringify(results, null, 2)}\n`);
const section = appMarkdown(results);
const HEADING = '## The example app';
const md = existsSync(paths.md) ? readFileSync(paths.md, 'utf8') : '';
const at = md.indexOf(HEADING);
const after = at < 0 ? -1 : md.indexOf('\n## ', at + HEADING.length);
const updated = at < 0 ? `${md.trimEnd()}\n\n${section}\n` : `${md.slice(0, at)}${section}\n${after < 0 ? '' : md.slice(after + 1)}`;
writeFileSync(paths.md, updated);
console.log(`\n${section}`);
log(`wrote ${paths.json} and the "${HEADING}" section of ${paths.md}`);
process.exit(0);
