/**
 * Turns a run's results into the console table, docs/benchmarks.md and the
 * SVG bar chart of the ratios (hand-written SVG, no chart dependency).
 */
import type { ContenderResult } from './http.js';
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
    /** What the HTTP contenders imported: 'src (tsx)' or the --lib module. */
    library: string;
  };
  baseline: string;
  http: ContenderResult[];
  skipped: { id: string; reason: string }[];
  micro: MicroResult[];
  memory: MemoryResult | null;
  targets: Target[];
}

const pct = (r: number): string => `${(r * 100).toFixed(1)} %`;
const num = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(n < 10 ? 2 : 1)} ms`;
const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MB`;

function rows(results: Results): string[][] {
  return results.http.map((c) => [
    c.label,
    num(c.requestsPerSec),
    ms(c.p50Ms),
    ms(c.p99Ms),
    pct(c.ratio),
    results.settings.rounds > 1 ? `${pct(c.ratioMin)} – ${pct(c.ratioMax)}` : '–',
    `${c.cpuMicrosPerRequest.toFixed(1)} µs (user ${c.userCpuMicrosPerRequest.toFixed(1)})`,
    pct(c.cpuRatio),
  ]);
}
const HEAD = ['contender', 'req/s', 'p50', 'p99', 'vs bare Koa', 'range over rounds', 'server CPU/req', 'CPU-bound ratio'];

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
  const maxRatio = Math.max(1, ...results.http.map((c) => c.ratio));
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
    parts.push(`<rect x="${labelW}" y="${y}" width="${Math.max(1, x(c.ratio) - labelW).toFixed(1)}" height="${barH}" fill="${color}" rx="3"/>`);
    parts.push(`<text x="${(x(c.ratio) + 6).toFixed(1)}" y="${y + barH / 2 + 4}" fill="#222">${pct(c.ratio)}</text>`);
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}

/** Where the CPU per request goes, from the rows that isolate each layer. */
function overhead(results: Results): string[] {
  const get = (id: string): ContenderResult | undefined => results.http.find((c) => c.id === id);
  const bare = get(results.baseline);
  const als = get('koa-als');
  const kuc = get('kuc-hs256-cache');
  if (bare === undefined || als === undefined || kuc === undefined) return [];
  const us = (x: number): string => `${x.toFixed(1)} µs`;
  return [
    '### Where the time goes',
    '',
    `Server CPU per request: bare Koa ${us(bare.cpuMicrosPerRequest)}; ` +
      `AsyncLocalStorage.run alone adds ${us(als.cpuMicrosPerRequest - bare.cpuMicrosPerRequest)} ` +
      `(on Node ${results.machine.node.replace(/^v/, '')} every promise and async resource then pays a hook), ` +
      `so any ALS-based context tops out near ${pct(als.cpuRatio)} of bare Koa (CPU-bound) on this machine. ` +
      `This middleware (token-cache hit, store lookup, scope, ALS) adds ${us(kuc.cpuMicrosPerRequest - als.cpuMicrosPerRequest)} ` +
      'on top of that floor.',
    '',
  ];
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
      `each server in its own child process (\`node --import tsx\`, library from ${s.library}), all on the same machine.`,
    `- ${s.warmupSeconds} s warm-up per contender, then ${s.rounds} alternating rounds of ${s.durationSeconds} s ` +
      '(the order rotates each round). Figures are medians over rounds; the ratio is the median of per-round ratios ' +
      'to bare Koa measured in the same round.',
    '',
    '## HTTP throughput',
    '',
    `Every server answers \`GET /whoami\` with \`{ user, provider }\`, the provider read three calls deep.`,
    '',
    ...table,
    '',
    '_vs bare Koa_ is the throughput ratio (req/s). _Server CPU/req_ is the server process\'s CPU time (user + system, ' +
      'including the kernel\'s socket writes) per request, and _CPU-bound ratio_ is bare Koa\'s CPU/req ÷ the contender\'s: ' +
      'the throughput ratio a CPU-bound server would reach on an idle machine. It is far less disturbed by other ' +
      'processes than req/s, so when the two disagree on a busy machine, trust the CPU-bound ratio more.',
    '',
    `![Throughput relative to bare Koa](${svgName})`,
    '',
    ...results.http.map((c) => `- **${c.label}** — ${c.description}`),
    ...results.skipped.map((c) => `- _${c.id}: not measured — ${c.reason}_`),
    '',
    ...overhead(results),
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
  lines.push('## Targets', '', '| target | goal | measured | |', '|---|---|---|---|');
  for (const t of results.targets) lines.push(`| ${t.name} | ${t.goal} | ${t.measured} | ${t.met === null ? 'not measured' : t.met ? 'met' : '**missed**'} |`);
  lines.push('', 'Reproduce with `npm ci && npm run bench` (about 4 minutes); `npm run bench -- --help` lists the options.', '');
  return lines.join('\n');
}
