/**
 * Keeps the benchmark harness from rotting: runs `bench/run.ts --smoke --src`
 * (about a second per contender) into a temporary directory and checks that
 * every part ran and wrote output of the expected shape. No timing is
 * asserted: figures from a smoke run on a shared CI machine mean nothing.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BASELINE_ID, CONTENDERS } from '../bench/contenders.js';
import type { Results } from '../bench/report.js';
import { LADDER_IDS } from '../bench/ladder.js';
import { runTsx } from './support/run-tsx.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'kuc-bench-smoke-'));
const committed = ['bench/results.json', 'docs/benchmarks.md', 'docs/benchmarks.svg'].map((p) => join(root, p));
const mtimes = committed.map((p) => (existsSync(p) ? statSync(p).mtimeMs : undefined));

function runSmoke(): Promise<{ code: number | null; output: string }> {
  // The sources (--src), not a build: `npm run bench` builds dist/ first, which would race the
  // package tests that build it for `npm pack` at the same time.
  return runTsx('bench/run.ts', ['--smoke', '--src', '--out', out]);
}

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bench/run.ts --smoke (what npm run bench runs, on the sources)', () => {
  it('measures every contender, the micro-benchmarks and the memory stream, and writes the report files', async () => {
    const { code, output } = await runSmoke();
    expect(code, output).toBe(0);

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    expect(results.version).toBe(1);
    expect(results.smoke).toBe(true);
    expect(results.baseline).toBe(BASELINE_ID);
    expect(results.machine.cores).toBeGreaterThan(0);
    // Pinned (two CPUs and taskset, as in CI), the load generator is kept awake, as bench:app keeps it; the host is recorded.
    const pinning = results.settings.pinning ?? '';
    if (pinning.startsWith('load generator pinned')) expect(pinning).toContain('kept awake');
    else expect(pinning).not.toContain('kept awake');
    expect(results.host?.cpus).toBe(results.machine.cores);

    const measured = results.http.map((c) => c.id).concat(results.skipped.map((s) => s.id));
    expect(measured.sort()).toEqual(CONTENDERS.filter((c) => c.ladderOnly !== true).map((c) => c.id).sort());
    expect(results.http.map((c) => c.id)).toContain(BASELINE_ID);
    // Only the Redis row may be skipped (no Redis here), and never in CI, where .ci/run starts Redis.
    expect(results.skipped.map((s) => s.id)).toEqual(process.env['CI'] === 'true' ? [] : expect.arrayContaining([]));
    for (const s of results.skipped) expect(s.id).toBe('kuc-redis-warm');
    for (const c of results.http) {
      expect(c.rounds, c.id).toHaveLength(1);
      expect(c.requestsPerSec, c.id).toBeGreaterThan(0);
      expect(c.rounds[0]!.non2xx, c.id).toBe(0);
      expect(c.rounds[0]!.errors, c.id).toBe(0);
      expect(c.p50Ms, c.id).toBeGreaterThan(0);
      expect(c.p99Ms, c.id).toBeGreaterThanOrEqual(c.p50Ms);
      expect(c.ratio, c.id).toBeGreaterThan(0);
      expect(c.cpuMicrosPerRequest, c.id).toBeGreaterThan(0);
      expect(c.cpuRatio, c.id).toBeGreaterThan(0);
    }
    expect(results.http.find((c) => c.id === BASELINE_ID)!.ratio).toBe(1);
    // Paired rounds: every contender but the baseline ran once at the same time as the baseline.
    for (const c of results.http) {
      if (c.id === BASELINE_ID) {
        expect(c.paired, c.id).toBeUndefined();
        continue;
      }
      expect(c.paired?.rounds, c.id).toHaveLength(1);
      const { contender, baseline } = c.paired!.rounds[0]!;
      for (const s of [contender, baseline]) {
        expect(s.requestsPerSec, c.id).toBeGreaterThan(0);
        expect(s.non2xx + s.errors, c.id).toBe(0);
      }
      expect(c.paired!.ratio, c.id).toBeCloseTo(contender.requestsPerSec / baseline.requestsPerSec, 10);
    }
    // Accounting: every measured contender counted; the ALS contenders add no async resource to bare Koa,
    // the closing reaction adds exactly one promise (counts, not timings: exact on any machine).
    const accounts = new Map(results.accounting!.map((a) => [a.id, a]));
    expect([...accounts.keys()].sort()).toEqual([...new Set([...results.http.map((c) => c.id), ...LADDER_IDS])].sort());
    // The in-process ladder: every step measured against the floor.
    expect(results.ladder!.steps.map((s) => s.id)).toEqual([...LADDER_IDS]);
    expect(results.ladder!.steps[0]!.cpuMicrosAboveFloor).toBe(0);
    for (const s of results.ladder!.steps) expect(Number.isFinite(s.cpuMicrosAboveFloor), s.id).toBe(true);
    const promises = (id: string): number => accounts.get(id)!.resources['PROMISE'] ?? 0;
    expect(promises('koa-als')).toBe(promises(BASELINE_ID));
    expect(promises('step-close')).toBe(promises('koa-als') + 1);
    expect(promises('kuc-hs256-cache')).toBe(promises('step-close'));

    expect(results.micro.map((m) => m.id)).toEqual(
      expect.arrayContaining([
        'get-user-provider', 'run-as-user', 'token-cache-hit', 'context-lookup', 'configure',
        'rs256-signature', 'rs256-jsonwebtoken', 'rs256-verifier', 'hs256-signature', 'hs256-jsonwebtoken', 'hs256-verifier',
      ]),
    );
    for (const m of results.micro) expect(m.avgNs, m.id).toBeGreaterThan(0);

    expect(results.memory).not.toBeNull();
    expect(results.memory!.evicted).toBe(results.memory!.users - results.memory!.max);
    expect(results.memory!.heapResidentBytes).toBeGreaterThan(0);

    expect(results.targets.length).toBeGreaterThanOrEqual(6);
    for (const t of results.targets) expect([true, false, null]).toContain(t.met);

    const md = readFileSync(join(out, 'benchmarks.md'), 'utf8');
    for (const c of results.http) expect(md).toContain(`| ${c.label} |`);
    expect(md).toContain('## The gap to bare Koa, term by term');
    expect(md).toContain('## The cold path');
    expect(md).toContain('smoke run');
    const svg = readFileSync(join(out, 'benchmarks.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<rect [^>]*rx="3"/g)).toHaveLength(results.http.length);

    // The committed results and docs are left alone.
    expect(committed.map((p) => (existsSync(p) ? statSync(p).mtimeMs : undefined))).toEqual(mtimes);
  }, 360_000);
});
