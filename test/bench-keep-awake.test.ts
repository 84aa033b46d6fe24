/**
 * bench/http.ts keepAwake(): while it runs, the event loop never waits in
 * epoll (event-loop utilization near 1 even with nothing to do); once it is
 * stopped, the loop sleeps again. Utilization is a share of wall time, not a
 * speed: it does not depend on how fast or busy the machine is.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { keepAwake } from '../bench/http.js';

describe('keepAwake() (bench/http.ts)', () => {
  it('keeps the event loop from sleeping until it is stopped, then lets it sleep', async () => {
    const start = performance.eventLoopUtilization();
    const stop = keepAwake();
    await sleep(200);
    const awake = performance.eventLoopUtilization(start);
    stop();
    await sleep(10);
    const middle = performance.eventLoopUtilization();
    await sleep(200);
    const asleep = performance.eventLoopUtilization(middle);
    expect(awake.utilization).toBeGreaterThan(0.9);
    expect(asleep.utilization).toBeLessThan(0.5);
  });
});
