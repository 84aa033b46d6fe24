/**
 * `npm run bench:lines`: the middleware against bare Koa on every supported
 * Node line, beside the primary one that `npm run bench` measures in full:
 *
 * - instructions per request under callgrind (bench/instructions.ts) on
 *   every line, primary included: bare Koa, `AsyncLocalStorage.run` alone and
 *   the middleware with the warm token cache;
 * - a short HTTP run (bench/run.ts, paired rounds against bare Koa) of the
 *   same contenders on the other lines.
 *
 * Writes bench/lines.json, which `npm run bench` puts into
 * docs/benchmarks.md ("Node lines"). Run it before `npm run bench`. The two
 * parts can run apart (`--no-http`, `--no-instructions`): a part not run keeps
 * what bench/lines.json already holds for that Node version. Instruction
 * counts do not depend on the machine's load; the HTTP runs do.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
// @ts-expect-error -- a plain .mjs module shared with scripts/test-lines.mjs
import { LINES, PRIMARY_NODE, nodeBinary } from '../scripts/node-lines.mjs';
import type { LineResult, LinesResults, Results } from './report.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '2000' },
    'paired-rounds': { type: 'string', default: '6' },
    duration: { type: 'string', default: '3' },
    'no-http': { type: 'boolean', default: false },
    'no-instructions': { type: 'boolean', default: false },
  },
});
const root = join(import.meta.dirname, '..');
const CONTENDERS = ['bare-koa', 'koa-als', 'kuc-hs256-cache'];

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`))));
  });
}

const file = join(root, 'bench', 'lines.json');
const before = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as LinesResults) : undefined;
const lines: LineResult[] = [];
const binaries: { bin: string; primary: boolean }[] = [
  { bin: PRIMARY_NODE as string, primary: true },
  ...(LINES as string[]).map((v) => ({ bin: nodeBinary(v) as string, primary: false })),
];
for (const { bin, primary } of binaries) {
  const version = (await run(bin, ['-v'])).trim();
  const earlier = before?.lines.find((l) => l.node === version);
  let instructions = earlier?.instructions ?? {};
  if (!values['no-instructions']) {
    const counted = JSON.parse(
      (await run(process.execPath, ['--import', 'tsx', join(root, 'bench', 'instructions.ts'), '--node', bin, '--requests', values.requests, '--warmup', values.warmup, '--only', CONTENDERS.join(',')]))
        .trim()
        .split('\n')
        .at(-1)!,
    ) as { perRequest: Record<string, number> };
    instructions = counted.perRequest;
  }
  let http: LineResult['http'] = earlier?.http ?? null;
  let cpu: LineResult['cpuMicros'] = earlier?.cpuMicros ?? null;
  if (!primary && !values['no-http']) {
    const out = mkdtempSync(join(tmpdir(), 'kuc-bench-line-'));
    try {
      await run(bin, ['--import', 'tsx', '--expose-gc', join(root, 'bench', 'run.ts'), '--only', CONTENDERS.join(','), '--no-micro', '--no-memory', '--no-accounting', '--no-ladder', '--rounds', '1', '--paired-rounds', values['paired-rounds'], '--duration', values.duration, '--warmup', '2', '--out', out]);
      const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
      http = Object.fromEntries(results.http.filter((c) => c.id !== results.baseline).map((c) => [c.id, c.paired?.ratio ?? null]));
      cpu = Object.fromEntries(results.http.map((c) => [c.id, Math.round(c.cpuMicrosPerRequest * 10) / 10]));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  lines.push({ node: version, primary, instructions, http, cpuMicros: cpu });
  console.error(`[bench:lines] ${version}: ${JSON.stringify(lines.at(-1))}`);
}
const requests = values['no-instructions'] && before !== undefined ? before.requests : Number(values.requests);
writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), requests, lines } satisfies LinesResults, null, 2)}\n`);
console.error('[bench:lines] wrote bench/lines.json');
