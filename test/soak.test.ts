/**
 * The CI form of the soak (bench/soak.ts): many users for ~25 s against the
 * example server in a child process with --expose-gc. Fails on any wrong
 * answer (another user's data, a torn configuration, a 5xx) or on a growth
 * trend of the heap after warm-up. `npm run soak -- --minutes 10` is the
 * long form.
 */
import { describe, expect, it } from 'vitest';
import { runSoak, stats, type Sample } from '../bench/soak.js';

const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 25);

describe('soak (short)', () => {
  it(`serves 2 000 users for ${SECONDS} s with no wrong answer and no heap growth after warm-up`, async () => {
    const result = await runSoak({ durationMs: SECONDS * 1000, users: 2000, concurrency: 16, sampleMs: 1000, warmup: 0.4 });
    expect(result.failures).toEqual({});
    expect(result.requests).toBeGreaterThan(2000);
    expect(result.usersInStore).toBeGreaterThan(1000);
    const steady = result.samples.filter((s) => s.t >= result.warmupMs);
    expect(steady.length).toBeGreaterThanOrEqual(5);
    // No growth trend: the least-squares fit of heapUsed (after a full GC) over the
    // post-warm-up window moves by less than 10 % of its mean.
    expect(Math.abs(result.heapUsed.drift), JSON.stringify(result.heapUsed)).toBeLessThan(0.1);
    expect(result.heapUsed.spread, JSON.stringify(result.heapUsed)).toBeLessThan(0.2);
  }, (SECONDS + 60) * 1000);
});

describe('soak trend analysis', () => {
  const series = (f: (minute: number) => number): Sample[] =>
    Array.from({ length: 30 }, (_, i) => ({ t: i * 10_000, rss: 0, heapUsed: f(i / 6), heapTotal: 0, external: 0, users: 0, requests: 0 }));

  it('flags a leak of 1 MiB per minute on a 20 MiB heap over 5 minutes', () => {
    const s = stats(series((m) => 20 * 2 ** 20 + m * 2 ** 20), (x) => x.heapUsed);
    expect(s.slopePerMin).toBeCloseTo(2 ** 20, -3);
    expect(s.drift).toBeGreaterThan(0.1);
  });

  it('does not flag a flat heap with ±2 % noise', () => {
    const s = stats(series((m) => 20 * 2 ** 20 * (1 + 0.02 * Math.sin(m * 17))), (x) => x.heapUsed);
    expect(Math.abs(s.drift)).toBeLessThan(0.05);
    expect(s.spread).toBeLessThanOrEqual(0.021);
  });
});
