/**
 * Keeps `npm run bench:app` from rotting: two short solo rounds and one
 * paired round of the bare route, the middleware alone and the example app,
 * into a temporary directory, and checks what it wrote. No timing is
 * asserted: figures from a smoke run on a shared CI machine mean nothing.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { APP_BASELINE_ID } from '../bench/app-contenders.js';
import { describeHost } from '../bench/host.js';
import type { AppResults } from '../bench/report.js';
import { runTsx } from './support/run-tsx.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'kuc-bench-app-smoke-'));
const committed = ['bench/app-results.json', 'docs/benchmarks.md'].map((p) => join(root, p));
const mtimes = committed.map((p) => (existsSync(p) ? statSync(p).mtimeMs : undefined));
const ROWS = ['me-kuc', 'app-logged'];

function runBench(): Promise<{ code: number | null; output: string }> {
  const args = ['--rounds', '2', '--duration', '1', '--paired-rounds', '1', '--paired', ROWS.join(','), '--ladder-rounds', '0', '--requests', '0', '--out', out];
  return runTsx('bench/app.ts', args);
}

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bench/app.ts (what npm run bench:app runs), two short rounds', () => {
  it('loads the bare route, the middleware and the example app (its SQLite choices included) with the load generator kept awake when pinned, and writes the section', async () => {
    const { code, output } = await runBench();
    expect(code, output).toBe(0);
    const results = JSON.parse(readFileSync(join(out, 'app-results.json'), 'utf8')) as AppResults;
    expect(results.http.map((c) => c.id)).toEqual([APP_BASELINE_ID, ...ROWS]);
    for (const c of results.http) {
      expect(c.rounds, c.id).toHaveLength(2);
      for (const s of c.rounds) {
        expect(s.requestsPerSec, c.id).toBeGreaterThan(0);
        expect(s.non2xx + s.errors, c.id).toBe(0);
      }
      if (c.id !== APP_BASELINE_ID) expect(c.paired?.rounds, c.id).toHaveLength(1);
    }
    // Pinned (two CPUs and taskset, as in CI): the generator spins on its own CPU; otherwise it must not.
    const generator = results.loadGenerator ?? '';
    const spun = output.includes('the load generator is kept awake while it loads');
    if (generator.startsWith('load generator pinned')) expect([generator, spun]).toEqual([expect.stringContaining('kept awake'), true]);
    else expect([generator, spun]).toEqual([expect.stringContaining('sleeping in epoll_wait'), false]);
    const md = readFileSync(join(out, 'benchmarks.md'), 'utf8');
    expect(md).toContain('## The example app');
    expect(md).toContain(generator);
    // The host is recorded with the rounds (bench/host.ts), so a busy hypervisor shows next to the figures.
    expect(results.host?.cpus).toBeGreaterThan(0);
    expect(md).toContain(describeHost(results.host!));
    // The committed results are left alone.
    expect(committed.map((p) => (existsSync(p) ? statSync(p).mtimeMs : undefined))).toEqual(mtimes);
  }, 240_000);
});
