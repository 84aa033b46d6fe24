/** The seed design's periodic cleanup of inactive contexts. */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ContextStore,
  cleanupInactiveUserContexts,
  getUserProvider,
  runAsUser,
  setDefaultStore,
  startCleanup,
  type EvictionReason,
} from '../src/index.js';
import { flush } from './support/app.js';
import { fakeClient } from './support/resources.js';

const HOUR = 3_600_000;
let store: ContextStore;
let evictions: [string, EvictionReason][];

beforeEach(() => {
  evictions = [];
  // ttl 0: only the cleanup under test removes contexts.
  store = new ContextStore({ ttl: 0, onEvict: (id, why) => evictions.push([id, why]) });
});
afterEach(async () => {
  vi.useRealTimers();
  await store.close();
});

describe('cleanupInactiveUserContexts', () => {
  it('removes a context last accessed 25 h ago and keeps a fresh one', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const stale = randomUUID();
    const fresh = randomUUID();
    const llm = fakeClient();
    store.commit(stale, { provider: 'Old', llmInstance: llm });
    vi.setSystemTime(Date.now() + 25 * HOUR);
    store.commit(fresh, { provider: 'New' });

    expect(cleanupInactiveUserContexts(24, store)).toBe(1);
    await flush();
    expect(store.has(stale)).toBe(false);
    expect(store.peek(fresh)?.provider).toBe('New');
    expect(evictions).toEqual([[stale, 'inactive']]);
    expect(llm.closed).toBe(1);
  });

  it('counts any access as activity, and keeps contexts a request is using', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const touched = randomUUID();
    const busy = randomUUID();
    store.commit(touched, { provider: 'T' });
    store.commit(busy, { provider: 'B' });
    let release!: () => void;
    const running = runAsUser(busy, () => new Promise<void>((r) => (release = r)), { store });

    vi.setSystemTime(Date.now() + 23 * HOUR);
    runAsUser(touched, () => getUserProvider(), { store });
    vi.setSystemTime(Date.now() + 2 * HOUR);

    expect(cleanupInactiveUserContexts(24, store)).toBe(0);
    expect(store.has(touched)).toBe(true);
    expect(store.has(busy)).toBe(true);

    release();
    await running;
    expect(cleanupInactiveUserContexts(24, store)).toBe(1);
    expect(store.has(busy)).toBe(false);
  });

  it('defaults to 24 hours and the default store', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    setDefaultStore(store);
    const old = randomUUID();
    const recent = randomUUID();
    store.commit(old, {});
    vi.setSystemTime(Date.now() + 23 * HOUR);
    store.commit(recent, {});
    vi.setSystemTime(Date.now() + 2 * HOUR);
    expect(cleanupInactiveUserContexts()).toBe(1);
    expect([store.has(old), store.has(recent)]).toEqual([false, true]);
  });

  it.each([-1, NaN, Infinity, '24'])('rejects maxAgeHours %s', (value) => {
    expect(() => cleanupInactiveUserContexts(value as number, store)).toThrow(TypeError);
  });
});

describe('startCleanup', () => {
  it('runs the cleanup every interval until stopped', () => {
    vi.useFakeTimers();
    const onCleanup = vi.fn();
    const stop = startCleanup(HOUR, { store, maxAgeHours: 2, onCleanup });
    const first = randomUUID();
    store.commit(first, {});

    vi.advanceTimersByTime(HOUR); // first is 1 h idle
    expect(onCleanup).toHaveBeenLastCalledWith(0);
    expect(store.has(first)).toBe(true);

    const second = randomUUID();
    store.commit(second, {});
    vi.advanceTimersByTime(2 * HOUR); // first 3 h idle, second 2 h: not more than 2
    expect(onCleanup.mock.calls.map((c) => c[0])).toEqual([0, 0, 1]);
    expect(store.has(first)).toBe(false);
    expect(store.has(second)).toBe(true);

    stop();
    vi.advanceTimersByTime(10 * HOUR);
    expect(onCleanup).toHaveBeenCalledTimes(3);
    expect(store.has(second)).toBe(true);
  });

  it('uses an unref()ed timer, so it never keeps the process alive', () => {
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const stop = startCleanup(HOUR, { store });
    try {
      expect(setIntervalSpy).toHaveBeenCalledTimes(1);
      expect(setIntervalSpy.mock.calls[0]![1]).toBe(HOUR);
      const timer = setIntervalSpy.mock.results[0]!.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
    } finally {
      stop();
    }
  });

  it.each([0, -5, NaN])('rejects interval %s', (interval) => {
    expect(() => startCleanup(interval, { store })).toThrow(TypeError);
  });

  it('rejects a bad maxAgeHours', () => {
    expect(() => startCleanup(HOUR, { store, maxAgeHours: -1 })).toThrow(TypeError);
  });
});
