/**
 * Keeps bench/usage.bench.ts from rotting: one tiny round, every row printed
 * with a number (figures themselves are for the bench, never asserted here).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireRedis } from './helpers/redis.js';

const HAVE_REDIS = await requireRedis('the usage bench smoke run');

describe.skipIf(!HAVE_REDIS)('bench/usage.bench.ts (smoke)', () => {
  it('prints µs per call for the bare call, the metered calls and both backends', () => {
    const root = join(import.meta.dirname, '..');
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/usage.bench.ts'], {
      cwd: root, env: { ...process.env, ROUNDS: '1', CALLS: '5' }, encoding: 'utf8', timeout: 120_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const rows = run.stdout.split('\n').filter((l) => /\d µs/.test(l));
    expect(rows).toHaveLength(11);
    for (const label of ['model call, bare', 'metered (memory, 3 limits)', 'metered (redis, no limit)', 'redis: admission + booking, 3 limits', 'memory: booking alone']) {
      expect(rows.some((r) => r.includes(label) && /\d+\.\d µs/.test(r)), label).toBe(true);
    }
  });
});
