/**
 * Turns a run's results into the console table, docs/benchmarks.md and the
 * SVG bar chart of the ratios (hand-written SVG, no chart dependency).
 */
import type { Account } from './accounting.js';
import type { ContenderResult } from './http.js';
import { describeHost, type HostRecord } from './host.js';
import type { LadderResult } from './ladder.js';
import type { MemoryResult } from './memory.js';
import type { MicroResult } from './micro.js';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  loadAverage: number[];
}

export interface Target {
  name: string;
  goal: string;
  measured: string;
  /** `null`: could not be measured in this run (the reason is in `measured`). */
  met: boolean | null;
}

/** One Node line as `npm run bench:lines` measured it (bench/lines.json). */
export interface LineResult {
  /** `process.version` of the line. */
  node: string;
  /** The primary line (the one `npm run bench` measures in full). */
  primary: boolean;
  /** Instructions per request under callgrind, per contender id. */
  instructions: Record<string, number>;
  /** Throughput vs bare Koa in paired rounds, per contender id (null on the primary line: see the tables above). */
  http: Record<string, number | null> | null;
  /** Server CPU time per request in the solo rounds of that HTTP run, µs, per contender id (null on the primary line). */
  cpuMicros?: Record<string, number> | null;
}

/** bench/lines.json. */
export interface LinesResults {
  date: string;
  /** Measured requests per contender under callgrind. */
  requests: number;
  lines: LineResult[];
}

export interface Results {
  version: 1;
  date: string;
  smoke: boolean;
  machine: Machine;
  settings: {
    connections: number;
    users: number;
    warmupSeconds: number;
    durationSeconds: number;
    rounds: number;
    /** Paired rounds (contender and bare Koa at the same time). */
    pairedRounds?: number;
    /** What the HTTP contenders imported: 'src (tsx)' or the --lib module. */
    library: string;
    /** How the load generator and the servers share the CPUs, and whether the generator is kept awake. */
    pinning?: string;
  };
  /** The host during the HTTP rounds: its CPUs and the share of their time the hypervisor took (bench/host.ts). */
  host?: HostRecord;
  baseline: string;
  http: ContenderResult[];
  skipped: { id: string; reason: string }[];
  /** Async resources and heap bytes per request, per contender (empty when not measured). */
  accounting?: Account[];
  /** The in-process ladder from the ALS floor to the middleware (null when not run). */
  ladder?: LadderResult | null;
  micro: MicroResult[];
  /** bench/lines.json, when `npm run bench:lines` wrote one. */
  lines?: LinesResults;
  memory: MemoryResult | null;
  targets: Target[];
}

const pct = (r: number): string => `${(r * 100).toFixed(1)} %`;
const num = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(n < 10 ? 2 : 1)} ms`;
const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MB`;

/** The paired figures when the run has them (the baseline is 100 % by definition), else the solo ones. */
function ratios(results: Results, c: ContenderResult): { ratio: number; min: number; max: number; cpu: number; above: number | undefined } {
  if (c.paired !== undefined) {
    return { ratio: c.paired.ratio, min: c.paired.ratioMin, max: c.paired.ratioMax, cpu: c.paired.cpuRatio, above: c.paired.cpuMicrosAbove };
  }
  if (c.id === results.baseline) return { ratio: 1, min: 1, max: 1, cpu: 1, above: 0 };
  return { ratio: c.ratio, min: c.ratioMin, max: c.ratioMax, cpu: c.cpuRatio, above: undefined };
}

function rows(results: Results): string[][] {
  return results.http.map((c) => {
    const r = ratios(results, c);
    return [
      c.label,
      num(c.requestsPerSec),
      ms(c.p50Ms),
      ms(c.p99Ms),
      pct(r.ratio),
      r.min === r.max ? '–' : `${pct(r.min)} – ${pct(r.max)}`,
      `${c.cpuMicrosPerRequest.toFixed(1)} µs (user ${c.userCpuMicrosPerRequest.toFixed(1)})`,
      r.above === undefined ? '–' : `${r.above >= 0 ? '+' : ''}${r.above.toFixed(1)} µs`,
      pct(r.cpu),
    ];
  });
}
const HEAD = ['contender', 'req/s', 'p50', 'p99', 'vs bare Koa', 'range over rounds', 'server CPU/req', 'CPU above bare Koa', 'CPU-bound ratio'];

export function consoleTable(results: Results): string {
  const all = [HEAD, ...rows(results)];
  const widths = HEAD.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const out = [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...rows(results).map(line)];
  if (results.micro.length > 0) {
    out.push('', 'micro-benchmarks (median / mean per call):');
    for (const m of results.micro) {
      out.push(`  ${m.label.padEnd(48)} ${m.p50Ns.toFixed(1).padStart(9)} ns / ${m.avgNs.toFixed(1).padStart(9)} ns`);
    }
  }
  if (results.memory !== null) out.push('', memoryLine(results.memory));
  out.push('', 'targets:');
  for (const t of results.targets) out.push(`  [${t.met === null ? ' n/a ' : t.met ? ' met ' : 'MISSED'}] ${t.name}: ${t.measured} (goal ${t.goal})`);
  return out.join('\n');
}

function memoryLine(m: MemoryResult): string {
  return (
    `memory: ${num(m.users)} users through max ${num(m.max)}: heap ${mb(m.heapEmptyBytes)} empty, ` +
    `${mb(m.heapResidentBytes)} with ${num(m.max)} resident (${num(m.bytesPerContext)} B/context), ` +
    `${mb(m.heapAfterBytes)} after all (growth ${mb(m.growthAfterAllBytes)})`
  );
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Horizontal bars: each contender's req/s as a share of bare Koa's. */
export function svgChart(results: Results): string {
  const barH = 26;
  const gap = 12;
  const labelW = 290;
  const chartW = 440;
  const top = 44;
  const height = top + results.http.length * (barH + gap) + 30;
  const width = labelW + chartW + 90;
  const shown = (c: ContenderResult): number => ratios(results, c).ratio;
  const maxRatio = Math.max(1, ...results.http.map(shown));
  const x = (r: number): number => labelW + (r / maxRatio) * chartW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600" fill="#222">Throughput relative to bare Koa (higher is better)</text>`,
  ];
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const tx = x(tick);
    parts.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${height - 26}" stroke="#ddd"/>`);
    parts.push(`<text x="${tx}" y="${height - 10}" text-anchor="middle" fill="#666" font-size="11">${tick * 100} %</text>`);
  }
  results.http.forEach((c, i) => {
    const y = top + i * (barH + gap);
    const color = c.id === results.baseline ? '#9aa5b1' : c.id.startsWith('kuc-') ? '#2b7bb9' : '#d9822b';
    parts.push(`<text x="${labelW - 10}" y="${y + barH / 2 + 4}" text-anchor="end" fill="#222">${escapeXml(c.label)}</text>`);
    parts.push(`<rect x="${labelW}" y="${y}" width="${Math.max(1, x(shown(c)) - labelW).toFixed(1)}" height="${barH}" fill="${color}" rx="3"/>`);
    parts.push(`<text x="${(x(shown(c)) + 6).toFixed(1)}" y="${y + barH / 2 + 4}" fill="#222">${pct(shown(c))}</text>`);
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}

/** What the first row of the term-by-term table is; the ladder's steps carry their own. */
const CEILING = 'Koa, HTTP, the route (the ceiling)';

/** The gap to bare Koa, term by term: the floor from the paired rounds, each step above it from the ladder, with the counts. */
function termByTerm(results: Results): string[] {
  const ladder = results.ladder;
  if (ladder == null) return [];
  const accounts = new Map((results.accounting ?? []).map((a) => [a.id, a]));
  const floorRun = results.http.find((c) => c.id === 'koa-als');
  const floor = floorRun === undefined ? undefined : ratios(results, floorRun).above;
  const label = (id: string): string => results.http.find((c) => c.id === id)?.label ?? ladder.steps.find((s) => s.id === id)?.label ?? id;
  const resources = (a: Account | undefined): number | undefined => (a === undefined ? undefined : Object.values(a.resources).reduce((x, y) => x + y, 0));
  const signed = (x: number | undefined, digits: number, unit = ''): string =>
    x === undefined ? '–' : `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}${unit}`;
  const delta = (f: (a: Account | undefined) => number | null | undefined, id: string, before: string): number | undefined => {
    const x = f(accounts.get(id));
    const y = f(accounts.get(before));
    return x == null || y == null ? undefined : x - y;
  };
  const ids = ['bare-koa', ...ladder.steps.map((s) => s.id)];
  const lines = [
    '## The gap to bare Koa, term by term',
    '',
    'Each row adds one piece of what the middleware does to the row above it. The `step-*` servers are built from the ' +
      "library's own `TokenVerifier`, `ContextStore` and `runAsUser` (see bench/contenders.ts). The AsyncLocalStorage " +
      'row is measured against bare Koa in the paired rounds (bare Koa must run in a process of its own: once any ' +
      'AsyncLocalStorage is entered, every promise in the process pays the hooks). The rows above that floor are ' +
      `measured in one process (\`bench/ladder.ts\`): all of them listen side by side and a client in the same process ` +
      `loads them in turn, ${ladder.batch} requests each, ${ladder.rounds} times over, so every row sees the same machine ` +
      'within milliseconds; the figure is the median over rounds of the row\'s CPU per request minus the floor\'s in ' +
      'the same round, with the quartiles of that difference. Promises, async resources and heap bytes are counted ' +
      'per request (`bench/accounting.ts`): counts, exact on any machine.',
    '',
    '| row | adds | CPU/request above the row before | CPU/request above the floor (quartiles) | promises | async resources | heap bytes |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];

  ids.forEach((id, i) => {
    const a = accounts.get(id);
    const step = ladder.steps.find((s) => s.id === id);
    const prev = i <= 1 ? undefined : ladder.steps.find((s) => s.id === ids[i - 1]);
    let above: string;
    let total: string;
    if (i === 0) {
      above = '–';
      total = '–';
    } else if (i === 1) {
      above = floor === undefined ? 'not measured' : `${signed(floor, 1, ' µs')} (paired rounds)`;
      total = '0 (the floor)';
    } else {
      above = signed(step!.cpuMicrosAboveFloor - prev!.cpuMicrosAboveFloor, 1, ' µs');
      total = `${step!.cpuMicrosAboveFloor.toFixed(1)} µs (${step!.p25.toFixed(1)} – ${step!.p75.toFixed(1)})`;
    }
    const counts =
      i === 0
        ? [a?.resources['PROMISE']?.toFixed(2) ?? '–', resources(a)?.toFixed(2) ?? '–', a?.bytes == null ? '–' : num(a.bytes)]
        : [
            signed(delta((x) => x?.resources['PROMISE'] ?? 0, id, ids[i - 1]!), 2),
            signed(delta(resources, id, ids[i - 1]!), 2),
            signed(delta((x) => x?.bytes, id, ids[i - 1]!), 0),
          ];
    lines.push(`| ${label(id)} | ${i === 0 ? CEILING : step!.adds} | ${above} | ${total} | ${counts.join(' | ')} |`);
  });
  const full = ladder.steps.at(-1)!;
  lines.push(
    '',
    'Promises, async resources and heap bytes are per request for the whole process (client and server; the ' +
      'client\'s share is the same in every row), as the first row\'s totals and, below it, the change from the row before.',
    '',
    `AsyncLocalStorage alone${floor === undefined ? '' : ` costs ${floor.toFixed(1)} µs per request here`}: ` +
      `${alsMechanism(results.machine.node)}, so no ALS-based context can get closer to bare Koa. Above that floor the middleware spends ${full.cpuMicrosAboveFloor.toFixed(1)} µs ` +
      'per request, one promise and one async resource (the reaction that closes the scope once the rest of the chain ' +
      'has settled, which is what lets a request keep a lease on its LLM and MCP clients until it is done), and the ' +
      'heap bytes above. Steps smaller than the quartile spread are not distinguishable from noise on this machine.',
    '',
  );
  return lines;
}

/** The RS256 path without the token cache: the signature check against everything else. */
function coldPath(results: Results): string[] {
  // The fastest batch of each: on a shared machine the least disturbed figure, so the differences between them hold.
  const micro = (id: string): number | undefined => results.micro.find((m) => m.id === id)?.minNs;
  const lines: string[] = [];
  for (const alg of ['rs256', 'hs256'] as const) {
    const sig = micro(`${alg}-signature`);
    const lib = micro(`${alg}-jsonwebtoken`);
    const ours = micro(`${alg}-verifier`);
    if (sig === undefined || lib === undefined || ours === undefined) return [];
    const us = (ns: number): string => `${(ns / 1000).toFixed(1)} µs`;
    lines.push(
      `| ${alg.toUpperCase()} | ${us(sig)} | ${us(lib - sig)} | ${us(ours - lib)} | ${us(ours)} | ${pct(sig / ours)} |`,
    );
  }
  const get = (id: string): ContenderResult | undefined => results.http.find((c) => c.id === id);
  const rs = get('kuc-rs256-nocache');
  const hs = get('kuc-hs256-cache');
  const http =
    rs?.paired !== undefined && hs?.paired !== undefined
      ? `In the HTTP rounds the RS256 server without cache spends ${(rs.paired.cpuMicrosAbove - hs.paired.cpuMicrosAbove).toFixed(1)} µs ` +
        'more CPU per request than the one with the cache: the verification above, on a colder CPU cache.'
      : '';
  return [
    '## The cold path: verifying a token (no token cache)',
    '',
    'Per call, from the fastest batch of each micro-benchmark below (their medians drift with the machine more than ' +
      'the differences between them). The signature check alone is `crypto.verify` (RSA) or an HMAC and a ' +
      "constant-time compare over the same bytes; jsonwebtoken's share is the rest of `jsonwebtoken.verify` (decoding " +
      'the three segments, JSON-parsing header and payload, its claim checks, and its own `createVerify` stream for the ' +
      "signature); this library's share is the rest of `TokenVerifier#verify` (token shape and length, the subject " +
      'check, freezing the claims).',
    '',
    '| algorithm | signature check alone | jsonwebtoken, besides the signature | this library, besides jsonwebtoken | total per token | share that is the signature |',
    '|---|---:|---:|---:|---:|---:|',
    ...lines,
    '',
    http,
    '',
  ].filter((line, i, all) => !(line === '' && all[i - 1] === ''));
}

export function markdown(results: Results, svgName: string): string {
  const m = results.machine;
  const s = results.settings;
  const table = [
    `| ${HEAD.join(' | ')} |`,
    `|${HEAD.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows(results).map((r) => `| ${r.join(' | ')} |`),
  ];
  const lines = [
    '# Benchmarks',
    '',
    `_Generated by \`npm run bench\` on ${results.date}${results.smoke ? ' (**smoke run**: figures are meaningless)' : ''}. Do not edit by hand._`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpu}, ${m.cores} cores; ${m.memoryGb.toFixed(1)} GB RAM; ${m.os}`,
    `- Node ${m.node}; load average at start ${m.loadAverage.map((l) => l.toFixed(2)).join(' / ')}`,
    `- Load: autocannon in the parent process, ${s.connections} connections, ${s.users} users' tokens in rotation; ` +
      `each server in its own child process (library: ${s.library}), all on the same machine; ${s.pinning ?? 'not pinned'}` +
      `${results.host === undefined ? '' : `; during the HTTP rounds, ${describeHost(results.host)}`}.`,
    `- ${s.warmupSeconds} s warm-up per contender, then ${s.rounds} solo rounds of ${s.durationSeconds} s (one server loaded ` +
      'at a time, the order rotating each round: req/s, latency, CPU/req) and ' +
      `${s.pairedRounds ?? 0} paired rounds of ${s.durationSeconds} s: each contender loaded at the same time as bare Koa, ` +
      'both servers on the same CPU, half the connections each. A paired round compares the two under exactly the same ' +
      "machine conditions (this machine's speed drifts by tens of percent from second to second, which swamps " +
      'ratios between solo rounds), so _vs bare Koa_, its range, _CPU above bare Koa_ and the _CPU-bound ratio_ come ' +
      'from the paired rounds (medians over rounds).',
    '',
    '## HTTP throughput',
    '',
    `Every server answers \`GET /whoami\` with \`{ user, provider }\`, the provider read three calls deep.`,
    '',
    ...table,
    '',
    '_req/s_, _p50_, _p99_ and _server CPU/req_ are from the solo rounds. _vs bare Koa_ is the throughput ratio (req/s) ' +
      'in the paired rounds; _CPU above bare Koa_ is the server CPU time per request (user + system, including the ' +
      "kernel's socket work) above bare Koa's in the same window, and _CPU-bound ratio_ is bare Koa's CPU/req ÷ the " +
      "contender's: the throughput ratio of a server that is CPU-bound.",
    '',
    `![Throughput relative to bare Koa](${svgName})`,
    '',
    ...results.http.map((c) => `- **${c.label}** — ${c.description}`),
    ...results.skipped.map((c) => `- _${c.id}: not measured — ${c.reason}_`),
    '',
    ...termByTerm(results),
    ...coldPath(results),
  ];
  if (results.micro.length > 0) {
    lines.push('## Micro-benchmarks', '', '| operation | median | mean | min | p99 |', '|---|---:|---:|---:|---:|');
    for (const x of results.micro) {
      lines.push(
        `| ${x.label} | ${x.p50Ns.toFixed(1)} ns | ${x.avgNs.toFixed(1)} ns | ${x.minNs.toFixed(1)} ns | ${x.p99Ns.toFixed(1)} ns |`,
      );
    }
    lines.push(
      '',
      'Per call, measured with mitata `measure()` (batched samples) in a separate process; the median is the robust figure on a shared machine.',
      '',
    );
  }
  if (results.memory !== null) {
    const x = results.memory;
    lines.push(
      '## Memory',
      '',
      `${num(x.users)} distinct users streamed through a store with \`max\` ${num(x.max)} (each opens a scope, reads, configures, closes), heap measured after full GCs (\`--expose-gc\`):`,
      '',
      '| point | heap used |',
      '|---|---:|',
      `| empty store | ${mb(x.heapEmptyBytes)} |`,
      `| ${num(x.max)} contexts resident | ${mb(x.heapResidentBytes)} |`,
      `| after ${num(x.users)} users (${num(x.evicted)} evicted) | ${mb(x.heapAfterBytes)} |`,
      '',
      `Retained per context: ${num(x.bytesPerContext)} B. Growth after all users above the ${num(x.max)} resident contexts: ${mb(x.growthAfterAllBytes)}.`,
      '',
    );
  }
  lines.push(...nodeLines(results));
  lines.push('## Targets', '', '| target | goal | measured | |', '|---|---|---|---|');
  for (const t of results.targets) lines.push(`| ${t.name} | ${t.goal} | ${t.measured} | ${t.met === null ? 'not measured' : t.met ? 'met' : '**missed**'} |`);
  const floorRun = results.http.find((c) => c.id === 'koa-als');
  if (floorRun !== undefined && floorRun.id !== results.baseline) {
    const f = ratios(results, floorRun);
    lines.push(
      '',
      `For scale: \`AsyncLocalStorage.run\` alone reaches ${pct(f.ratio)} of bare Koa (CPU-bound: ${pct(f.cpu)}) in the same ` +
        'rounds. That is the ceiling of any context kept in AsyncLocalStorage on this machine and Node version; a goal ' +
        'above it cannot be met by this design, and the section on the gap term by term shows what the middleware spends above it.',
    );
  }
  lines.push('', 'Reproduce with `npm ci && npm run bench` (about 10 minutes; it builds the package first; run `npm run bench:lines` before it for the Node lines section); `npm run bench -- --help` lists the options.', '');
  return lines.join('\n');
}

/** The "Node lines" section: instructions per request on every line, and the short HTTP runs of the other lines. */
function nodeLines(results: Results): string[] {
  const x = results.lines;
  if (x === undefined) return [];
  const ir = (l: LineResult, id: string): number | undefined => l.instructions[id];
  const ofBare = (l: LineResult, id: string): string => {
    const bare = ir(l, 'bare-koa');
    const own = ir(l, id);
    return bare === undefined || own === undefined ? '–' : pct(bare / own);
  };
  const http = (l: LineResult, id: string): string => {
    if (l.primary) {
      const c = results.http.find((h) => h.id === id);
      return c === undefined ? '–' : `${pct(ratios(results, c).ratio)} (tables above)`;
    }
    const r = l.http?.[id];
    return r === undefined || r === null ? '–' : pct(r);
  };
  const k = (n: number | undefined): string => (n === undefined ? '–' : `${(n / 1000).toFixed(1)} k`);
  return [
    '## Node lines',
    '',
    `Measured by \`npm run bench:lines\` on ${x.date}. Instructions per request are counted by valgrind's callgrind in ` +
      `each server (every thread), over ${num(x.requests)} sequential keep-alive requests after as many for warm-up; ` +
      'unlike req/s they do not move with the machine\'s speed, so their ratios are the noise-free comparison. ' +
      '_vs bare Koa (req/s)_ on the other lines is a short paired run of the same three servers.',
    '',
    '| Node | instr./req bare Koa | ALS.run alone | middleware | ALS.run vs bare (instr.) | middleware vs bare (instr.) | ALS.run vs bare (req/s) | middleware vs bare (req/s) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...x.lines.map(
      (l) =>
        `| ${l.node}${l.primary ? ' (primary)' : ''} | ${k(ir(l, 'bare-koa'))} | ${k(ir(l, 'koa-als'))} | ${k(ir(l, 'kuc-hs256-cache'))} | ` +
        `${ofBare(l, 'koa-als')} | ${ofBare(l, 'kuc-hs256-cache')} | ${http(l, 'koa-als')} | ${http(l, 'kuc-hs256-cache')} |`,
    ),
    '',
    '_middleware_ is `userContext` HS256 with the token cache on (`kuc-hs256-cache`); _ALS.run alone_ is bare Koa + `AsyncLocalStorage.run` (`koa-als`), the floor of any context kept in AsyncLocalStorage. On Node 22 AsyncLocalStorage runs on async hooks; on 24 and 26 on AsyncContextFrame. ' +
      'Compare instruction counts within a line: across lines they also reflect how each V8 runs under valgrind; the CPU times below are the cross-line comparison.',
    ...cpuLine(x),
    '',
  ];
}

/** Server CPU per request of the other lines' HTTP runs, one sentence. */
function cpuLine(x: LinesResults): string[] {
  const measured = x.lines.filter((l) => l.cpuMicros != null);
  if (measured.length === 0) return [];
  const one = (l: LineResult): string =>
    `${l.node}: ${Object.entries(l.cpuMicros!).map(([id, us]) => `${id} ${us.toFixed(1)} µs`).join(', ')}`;
  return ['', `Server CPU per request in those HTTP runs (solo rounds): ${measured.map(one).join('; ')}.`];
}

/**
 * What AsyncLocalStorage costs per request on a Node line, by its mechanism: from Node 24 it runs on
 * AsyncContextFrame (no async hooks; `run()` builds a frame from the current one and every promise
 * captures the frame it was created in); before, entering it turns on the async hooks.
 */
export function alsMechanism(node: string): string {
  const version = node.replace(/^v/, '');
  if (Number(version.split('.')[0]) >= 24) {
    return `on Node ${version} it runs on AsyncContextFrame: each \`run()\` builds a frame (a Map) from the current one, and every ` +
      'promise and async resource of the request captures the frame it was created in (the heap bytes of that row)';
  }
  return `on Node ${version} entering it turns on the async hooks, after which every promise and async resource of every ` +
    'request pays a hook and carries the store (the heap bytes of that row)';
}

/** What `npm run bench:app` measured (bench/app.ts). */
export interface AppResults {
  date: string;
  loadAverage: number[];
  /** The rows from the bare route up, each adding `adds` to the one before (or to its `base`). */
  rows: { id: string; label: string; adds: string; base?: string }[];
  /**
   * HTTP rounds against the bare route (by default me-kuc, app-errors, app-logged, app-logged-debug and app-koa-router):
   * solo rounds (one server at a time, alternating), and paired rounds in `paired`.
   */
  http: ContenderResult[];
  /** How the HTTP rounds' load generator ran: pinned or not, kept awake or not (bench/http.ts). */
  loadGenerator?: string;
  /** The host during the HTTP rounds: its CPUs and the share of their time the hypervisor took (bench/host.ts). */
  host?: HostRecord;
  /** In-process ladder: each row's CPU per request above the row before or its base (the bare row is not in it). */
  ladder: { id: string; aboveBefore: number; p25: number; p75: number }[];
  /** Server instructions per request under callgrind. */
  instructions: { id: string; requests: number; perRequest: number }[];
  instructionsNote?: string;
  /** Paragraphs printed after the tables (what a run found; kept in bench/app-results.json). */
  notes?: string[];
}

/** The section "The example app" of docs/benchmarks.md. */
export function appMarkdown(r: AppResults): string {
  const count = new Map(r.instructions.map((c) => [c.id, c.perRequest]));
  const step = new Map(r.ladder.map((s) => [s.id, s]));
  const http = new Map(r.http.map((c) => [c.id, c]));
  const bare = count.get(r.rows[0]!.id);
  const k = (n: number): string => `${(n / 1000).toFixed(1)} k`;
  const lines = [
    '## The example app',
    '',
    "`GET /me/context` of the example app (examples/app.ts, as examples/server.ts runs it) against a bare Koa route " +
      'answering the same JSON, one layer at a time (`npm run bench:app`, rows in bench/app-contenders.ts: each `app-*` row is ' +
      "createApp()'s own middleware stack cut down to the layers named). Instructions are the server's, counted by callgrind " +
      `over ${r.instructions[0]?.requests ?? 0} requests after a warm-up (bench/app-instructions.ts; user space only: the kernel's ` +
      "socket and log writes are not in them; a row's count moves by up to ±20 % from run to run (V8's JIT and GC decisions, timers, the slowdown under valgrind)); \"% of bare\" is the bare row's count over the row's. The CPU column is the in-process ladder (bench/ladder.ts `--ids`): the row's CPU per " +
      'request minus the row before\'s (a row with a base: minus the base\'s) in the same rounds, median and quartiles, client included, on a shared machine ' +
      `(load ${r.loadAverage.map((l) => l.toFixed(1)).join(' ')} at the end of the run).`,
    '',
    '| row | adds | instructions/request | above the row before (or its base) | % of bare (instructions) | CPU above the row before or its base (quartiles) |',
    '|---|---|---:|---:|---:|---:|',
  ];
  r.rows.forEach((row, i) => {
    const n = count.get(row.id);
    const before = i === 0 ? undefined : count.get(row.base ?? r.rows[i - 1]!.id);
    const s = step.get(row.id);
    lines.push(
      `| ${row.label} (\`${row.id}\`) | ${row.adds} | ${n === undefined ? '–' : k(n)} | ` +
        `${n === undefined || before === undefined ? '–' : `${n >= before ? '+' : '−'}${k(Math.abs(n - before))}`} | ` +
        `${n === undefined || bare === undefined ? '–' : pct(bare / n)} | ` +
        `${s === undefined ? '–' : `${s.aboveBefore >= 0 ? '+' : '−'}${Math.abs(s.aboveBefore).toFixed(1)} µs (${s.p25.toFixed(1)} – ${s.p75.toFixed(1)})`} |`,
    );
  });
  if (r.instructionsNote !== undefined) lines.push('', `Instructions not counted: ${r.instructionsNote}.`);
  const solo = [...http.values()];
  const soloRounds = solo[0]?.rounds.length ?? 0;
  if (soloRounds > 1) {
    lines.push(
      '',
      `Solo HTTP rounds (bench/http.ts: one server at a time on its own CPU, the load generator on the other, ${soloRounds} alternating rounds; ` +
        `${r.loadGenerator === undefined ? '' : `${r.loadGenerator}; `}` +
        `${r.host === undefined ? '' : `on ${describeHost(r.host)}; `}` +
        "a row's ratio is the median of its per-round ratios to the bare route's round, its range the lowest and highest; " +
        "CPU-bound ratio: the bare route's server CPU per request over the row's, same rounds):",
      '',
      '| server | req/s | vs the bare route (median, range) | server CPU/request | CPU-bound ratio |',
      '|---|---:|---:|---:|---:|',
    );
    for (const c of solo) {
      lines.push(
        `| ${c.label} (\`${c.id}\`) | ${Math.round(c.requestsPerSec)} | ${pct(c.ratio)} (${pct(c.ratioMin)} – ${pct(c.ratioMax)}) | ` +
          `${c.cpuMicrosPerRequest.toFixed(1)} µs | ${pct(c.cpuRatio)} |`,
      );
    }
  }
  const paired = [...http.values()].filter((c) => c.paired !== undefined);
  if (paired.length > 0) {
    lines.push(
      '',
      'Paired HTTP rounds (bench/http.ts: each server loaded at the same time as the bare route, both on one CPU, ' +
        `${paired[0]!.paired!.rounds.length} rounds):`,
      '',
      '| server | req/s vs the bare route (median, range) | CPU-bound ratio |',
      '|---|---:|---:|',
    );
    for (const c of paired) {
      lines.push(`| ${c.label} (\`${c.id}\`) | ${pct(c.paired!.ratio)} (${pct(c.paired!.ratioMin)} – ${pct(c.paired!.ratioMax)}) | ${pct(c.paired!.cpuRatio)} |`);
    }
  }
  for (const note of r.notes ?? []) lines.push('', note);
  return lines.join('\n');
}
