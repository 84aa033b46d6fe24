/**
 * `npm run bench`: HTTP contenders (bench/contenders.ts), micro-benchmarks
 * (bench/micro.ts) and the memory stream (bench/memory.ts) in one run; prints
 * the table, writes results.json, docs/benchmarks.md and docs/benchmarks.svg.
 *
 * `npm run bench -- --help` for the options. `--smoke` runs everything for
 * about a second each and writes into a temporary directory (or `--out`).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BASELINE_ID, CONTENDERS, LIB_ENV, type Contender } from './contenders.js';
import { makeFixtures } from './fixtures.js';
import { measureAccounts, type Account } from './accounting.js';
import { LADDER_IDS, type LadderResult } from './ladder.js';
import { describeLoadGenerator, pinLoadGenerator, runHttp, type ContenderResult } from './http.js';
import { describeHost, duringHost, type HostRecord } from './host.js';
import type { MemoryResult } from './memory.js';
import type { MicroResult } from './micro.js';
import { appMarkdown, consoleTable, markdown, svgChart, type AppResults, type LinesResults, type Results, type Target } from './report.js';
import { median } from './stats.js';

const HELP = `npm run bench -- [options]
  --smoke              ~1 s per contender, tiny micro/memory runs; writes to a temp dir unless --out
  --out <dir>          write results.json, benchmarks.md, benchmarks.svg there
                       (default: bench/results.json, docs/benchmarks.md, docs/benchmarks.svg)
  --only <ids>         comma-separated contender ids (the baseline "${BASELINE_ID}" is always added)
  --rounds <n>         alternating solo rounds (default 8)
  --paired-rounds <n>  rounds of each contender at the same time as bare Koa, on one CPU (default 8; 0: none)
  --duration <s>       seconds per contender per round (default 4)
  --warmup <s>         warm-up seconds per contender (default 3)
  --connections <n>    autocannon connections (default 50)
  --memory-users <n>   users streamed through the store (default 1000000)
  --ladder-rounds <n>  rounds of the in-process ladder from the ALS floor to the middleware (default 150)
  --accounting-requests <n>  requests per contender counted for async resources and heap bytes (default 2000)
  --no-micro, --no-memory, --no-http, --no-accounting, --no-ladder   skip a part
  --profile <dir>      run the servers with --cpu-prof, profiles written to <dir>
                       (summarise one with: npx tsx bench/profile-summary.ts <file>)
  --no-pin             do not pin (default with ≥ 2 CPUs: the load generator on CPU 0, the servers on CPU 1, with taskset)
  --no-keep-awake      let the pinned load generator sleep between responses (bench/http.ts keepAwake)
  --lib <module>       the library module the HTTP contenders import (default: dist/esm/index.js, the built
                       package, which \`npm run bench\` builds first)
  --src                import the TypeScript sources (src/, through tsx) instead
contenders: ${CONTENDERS.map((c) => c.id).join(', ')}`;

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
    only: { type: 'string' },
    rounds: { type: 'string' },
    'paired-rounds': { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    'memory-users': { type: 'string' },
    'no-micro': { type: 'boolean', default: false },
    'no-accounting': { type: 'boolean', default: false },
    'no-ladder': { type: 'boolean', default: false },
    'ladder-rounds': { type: 'string' },
    'accounting-requests': { type: 'string' },
    src: { type: 'boolean', default: false },
    'no-memory': { type: 'boolean', default: false },
    'no-http': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    'no-keep-awake': { type: 'boolean', default: false },
    profile: { type: 'string' },
    lib: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

function count(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number >= ${min}\n\n${HELP}`);
    process.exit(2);
  }
  return n;
}

const smoke = values.smoke;
const rounds = Math.floor(count('rounds', values.rounds, smoke ? 1 : 4, 1));
const pairedRounds = Math.floor(count('paired-rounds', values['paired-rounds'], smoke ? 1 : 8, 0));
const duration = count('duration', values.duration, smoke ? 1 : 3, 0.5);
const ladderRounds = Math.floor(count('ladder-rounds', values['ladder-rounds'], smoke ? 4 : 150, 1));
const accountingRequests = Math.floor(count('accounting-requests', values['accounting-requests'], smoke ? 200 : 2_000, 100));
const warmup = count('warmup', values.warmup, smoke ? 0.5 : 3, 0);
const connections = Math.floor(count('connections', values.connections, 50, 1));
const memoryUsers = Math.floor(count('memory-users', values['memory-users'], smoke ? 20_000 : 1_000_000, 1));
const memoryMax = smoke ? 1_000 : 10_000;

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = values.out ?? (smoke ? mkdtempSync(join(tmpdir(), 'kuc-bench-')) : undefined);
const paths =
  outDir === undefined
    ? { json: join(root, 'bench/results.json'), md: join(root, 'docs/benchmarks.md'), svg: join(root, 'docs/benchmarks.svg') }
    : { json: join(outDir, 'results.json'), md: join(outDir, 'benchmarks.md'), svg: join(outDir, 'benchmarks.svg') };

let selected: Contender[] = CONTENDERS.filter((c) => c.ladderOnly !== true);
if (values.only !== undefined) {
  const ids = new Set([BASELINE_ID, ...values.only.split(',').map((s) => s.trim()).filter(Boolean)]);
  for (const id of ids) {
    if (!CONTENDERS.some((c) => c.id === id)) {
      console.error(`unknown contender "${id}"; known: ${CONTENDERS.map((c) => c.id).join(', ')}`);
      process.exit(2);
    }
  }
  selected = CONTENDERS.filter((c) => ids.has(c.id));
}

const log = (line: string): void => console.log(`[bench] ${line}`);
const builtLibrary = join(root, 'dist/esm/index.js');
const library = values.src ? undefined : (values.lib ?? builtLibrary);
if (library !== undefined) {
  if (!existsSync(library)) {
    console.error(`${library} does not exist: run \`npm run build\` first (\`npm run bench\` does), or pass --src`);
    process.exit(2);
  }
  // Inherited by the server and accounting children (fork passes process.env on).
  process.env[LIB_ENV] = library;
}
log(`library under test: ${library ?? 'src/ (TypeScript sources through tsx)'}`);
const machine = {
  cpu: cpus()[0]?.model.trim() ?? 'unknown',
  cores: cpus().length,
  memoryGb: totalmem() / 2 ** 30,
  os: `${type()} ${release()} (${process.arch})`,
  node: process.version,
  loadAverage: loadavg(),
};
log(`${machine.cpu} × ${machine.cores}, Node ${machine.node}, load ${machine.loadAverage.map((l) => l.toFixed(2)).join(' ')}`);

function runChild(script: string, args: string[]): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--expose-gc', fileURLToPath(new URL(script, import.meta.url)), ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited with code ${String(code)}`))));
  });
}

const pin = values['no-http'] ? { serverCpu: undefined, note: 'no HTTP run' } : pinLoadGenerator(values['no-pin']);
const generator = { keepAwake: !values['no-keep-awake'], serverCpu: pin.serverCpu };
const pinning = values['no-http'] ? pin.note : describeLoadGenerator(pin.note, generator);
log(pinning);

const scratch = mkdtempSync(join(tmpdir(), 'kuc-bench-scratch-'));

// --- HTTP ---------------------------------------------------------------
const skipped: { id: string; reason: string }[] = [];
let http: ContenderResult[] = [];
let host: HostRecord | undefined;
if (!values['no-http']) {
  const runnable: Contender[] = [];
  for (const c of selected) {
    const reason = await c.unavailable?.();
    if (reason === undefined) runnable.push(c);
    else {
      skipped.push({ id: c.id, reason });
      log(`skipping ${c.id}: ${reason}`);
    }
  }
  const serverExecArgv: string[] = [];
  if (values.profile !== undefined) {
    mkdirSync(values.profile, { recursive: true });
    serverExecArgv.push('--cpu-prof', `--cpu-prof-dir=${values.profile}`);
  }
  log(`HTTP: ${runnable.length} contenders, ${connections} connections, ${warmup} s warm-up, ${rounds} × ${duration} s rounds`);
  [http, host] = await duringHost(() =>
    runHttp(runnable, BASELINE_ID, makeFixtures(100), { connections, warmup, duration, rounds, pairedRounds, serverExecArgv, ...generator, log }));
  log(`host: ${describeHost(host)}`);
}

// --- ladder ---------------------------------------------------------------
let ladder: LadderResult | null = null;
if (!values['no-ladder']) {
  log(`ladder: ${LADDER_IDS.join(' → ')} in one process, ${ladderRounds} interleaved rounds`);
  const file = join(scratch, 'ladder.json');
  await runChild('./ladder.ts', ['--json', file, '--rounds', String(ladderRounds)]);
  ladder = JSON.parse(readFileSync(file, 'utf8')) as LadderResult;
}

// --- accounting -----------------------------------------------------------
let accounting: Account[] = [];
if (!values['no-accounting']) {
  const ids = [...new Set([...http.map((c) => c.id), ...(values['no-ladder'] ? [] : [BASELINE_ID, ...LADDER_IDS])])];
  log(`accounting: async resources and heap bytes per request, ${accountingRequests} requests per contender`);
  accounting = measureAccounts(ids, accountingRequests, log);
}

// --- micro --------------------------------------------------------------
let micro: MicroResult[] = [];
if (!values['no-micro']) {
  log('micro-benchmarks');
  const file = join(scratch, 'micro.json');
  await runChild('./micro.ts', [...(smoke ? ['--smoke'] : []), '--json', file]);
  micro = JSON.parse(readFileSync(file, 'utf8')) as MicroResult[];
}

// --- memory -------------------------------------------------------------
let memory: MemoryResult | null = null;
if (!values['no-memory']) {
  log(`memory: ${memoryUsers} users through max ${memoryMax}`);
  const file = join(scratch, 'memory.json');
  await runChild('./memory.ts', ['--users', String(memoryUsers), '--max', String(memoryMax), '--json', file]);
  memory = JSON.parse(readFileSync(file, 'utf8')) as MemoryResult;
}

// --- targets ------------------------------------------------------------
const byId = new Map(http.map((c) => [c.id, c]));
/**
 * a's throughput ÷ b's, and the CPU-bound ratio: from the paired rounds (each
 * against bare Koa at the same time, so a ÷ b is the ratio of their ratios),
 * else from the solo rounds.
 */
function relative(a: string, b: string): { ratio: number; cpu: number; paired: boolean } | undefined {
  const x = byId.get(a);
  const y = byId.get(b);
  if (x === undefined || y === undefined) return undefined;
  const px = a === BASELINE_ID ? { ratio: 1, cpuRatio: 1 } : x.paired;
  const py = b === BASELINE_ID ? { ratio: 1, cpuRatio: 1 } : y.paired;
  if (px !== undefined && py !== undefined) return { ratio: px.ratio / py.ratio, cpu: px.cpuRatio / py.cpuRatio, paired: true };
  return {
    ratio: median(x.rounds.map((s, i) => s.requestsPerSec / y.rounds[i]!.requestsPerSec)),
    cpu: median(x.rounds.map((s, i) => y.rounds[i]!.cpuMicrosPerRequest / s.cpuMicrosPerRequest)),
    paired: false,
  };
}
function ratioTarget(name: string, id: string, goal: number, against = BASELINE_ID, times = false): Target {
  const r = relative(id, against);
  const format = (x: number): string => (times ? `${x.toFixed(1)}×` : `${(x * 100).toFixed(1)} %`);
  const goalText = times ? `≥ ${goal}×` : `≥ ${goal * 100} %`;
  if (r === undefined) {
    const reason = skipped.find((s) => s.id === id)?.reason ?? `${id} or ${against} was not measured in this run`;
    return { name, goal: goalText, measured: `not measured: ${reason}`, met: null };
  }
  return {
    name,
    goal: goalText,
    measured: `${format(r.ratio)} (CPU-bound: ${format(r.cpu)}${r.paired ? '' : '; solo rounds'})`,
    met: r.ratio >= goal && r.cpu >= goal,
  };
}
const targets: Target[] = [
  ratioTarget('HS256 + token cache vs bare Koa', 'kuc-hs256-cache', 0.9),
  ratioTarget('HS256 + token cache vs koa-jwt + Map + ALS', 'kuc-hs256-cache', 15, 'koa-jwt', true),
  ratioTarget('HS256, no token cache, vs bare Koa', 'kuc-hs256-nocache', 0.4),
  ratioTarget('Redis store (warm) vs in-memory', 'kuc-redis-warm', 0.95, 'kuc-hs256-cache'),
];
const gup = micro.find((m) => m.id === 'get-user-provider');
targets.push(
  gup === undefined
    ? { name: 'getUserProvider() in a scope', goal: '≤ 25 ns', measured: 'not measured', met: null }
    : {
        name: 'getUserProvider() in a scope (median)',
        goal: '≤ 25 ns',
        measured: `${gup.p50Ns.toFixed(1)} ns (mean ${gup.avgNs.toFixed(1)} ns)`,
        met: gup.p50Ns <= 25,
      },
);
targets.push(
  memory === null
    ? { name: 'heap growth after 1 M users', goal: '≤ 64 MB', measured: 'not measured', met: null }
    : {
        name: `heap growth after ${memory.users.toLocaleString('en-US')} users`,
        goal: '≤ 64 MB',
        measured: `${(memory.growthAfterAllBytes / 2 ** 20).toFixed(1)} MB`,
        met: memory.growthAfterAllBytes <= 64 * 2 ** 20,
      },
);

const linesFile = join(root, 'bench', 'lines.json');
const results: Results = {
  version: 1,
  date: new Date().toISOString(),
  smoke,
  machine,
  settings: {
    connections,
    users: 100,
    warmupSeconds: warmup,
    durationSeconds: duration,
    rounds,
    pairedRounds,
    library: library === undefined ? 'src/ (TypeScript sources through tsx)' : library === builtLibrary ? 'dist/esm/index.js (the built package)' : library,
    pinning,
  },
  ...(host !== undefined ? { host } : {}),
  baseline: BASELINE_ID,
  http,
  skipped,
  accounting,
  ladder,
  micro,
  memory,
  targets,
  ...(existsSync(linesFile) ? { lines: JSON.parse(readFileSync(linesFile, 'utf8')) as LinesResults } : {}),
};

console.log(`\n${consoleTable(results)}\n`);
for (const p of Object.values(paths)) mkdirSync(join(p, '..'), { recursive: true });
writeFileSync(paths.json, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(paths.svg, svgChart(results));
// The example app's section comes from its own run (npm run bench:app), kept across this one.
const appResults = join(root, 'bench/app-results.json');
const appSection = existsSync(appResults) ? `\n${appMarkdown(JSON.parse(readFileSync(appResults, 'utf8')) as AppResults)}\n` : '';
writeFileSync(paths.md, markdown(results, 'benchmarks.svg') + appSection);
log(`wrote ${paths.json}, ${paths.md}, ${paths.svg}`);
