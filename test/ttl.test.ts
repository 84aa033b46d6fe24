/** Sliding inactivity TTL, the sweep timer and the LRU bound, on a faked clock. */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ContextStore,
  getUserProvider,
  runAsUser,
  type ContextStoreOptions,
  type EvictionReason,
} from '../src/index.js';
import { flush } from './support/app.js';
import { fakeClient } from './support/resources.js';

let stores: ContextStore[] = [];
let evictions: [string, EvictionReason][] = [];
beforeEach(() => {
  vi.useFakeTimers();
  evictions = [];
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.map((s) => s.close()));
  stores = [];
});

function newStore(options: ContextStoreOptions): ContextStore {
  const store = new ContextStore({ ...options, onEvict: (id, why) => evictions.push([id, why]) });
  stores.push(store);
  return store;
}

describe('sliding inactivity TTL', () => {
  it('a context used within the TTL stays; one idle past it goes and its clients are disposed', async () => {
    const store = newStore({ ttl: 1_000, sweepInterval: 0 });
    const active = randomUUID();
    const idle = randomUUID();
    const llm = fakeClient();
    store.commit(active, { provider: 'A' });
    store.commit(idle, { provider: 'I', llmInstance: llm });

    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(600);
      runAsUser(active, () => getUserProvider(), { store }); // a request touches it
    }
    // 3 s have passed: `active` was used every 600 ms, `idle` never.
    expect(store.has(active)).toBe(true);
    expect(store.has(idle)).toBe(false);
    expect(llm.closed).toBe(0);

    store.purgeStale();
    await flush();
    expect(evictions).toEqual([[idle, 'expired']]);
    expect(llm.closed).toBe(1);
    expect(store.peek(active)?.provider).toBe('A');
    expect(store.size).toBe(1);
  });

  it('peek and has do not keep a context alive', () => {
    const store = newStore({ ttl: 1_000, sweepInterval: 0 });
    const id = randomUUID();
    store.commit(id, { provider: 'P' });
    for (let i = 0; i < 4; i++) {
      vi.advanceTimersByTime(300);
      store.peek(id);
      store.has(id);
    }
    expect(store.has(id)).toBe(false);
  });

  it('a request after expiry starts from the defaults', () => {
    const store = newStore({ ttl: 1_000, sweepInterval: 0 });
    const id = randomUUID();
    store.commit(id, { provider: 'Old' });
    vi.advanceTimersByTime(1_001);
    expect(runAsUser(id, () => getUserProvider(), { store })).toBeNull();
    expect(evictions).toEqual([[id, 'expired']]);
  });

  it('the sweep timer disposes expired contexts nobody touches again', async () => {
    const store = newStore({ ttl: 1_000, sweepInterval: 250 });
    const llm = fakeClient();
    const id = randomUUID();
    store.commit(id, { llmInstance: llm });
    vi.advanceTimersByTime(900);
    await flush();
    expect(llm.closed).toBe(0);
    vi.advanceTimersByTime(600);
    await flush();
    expect(evictions).toEqual([[id, 'expired']]);
    expect(store.size).toBe(0);
    expect(llm.closed).toBe(1);
  });

  it('ttl 0 turns expiry off', () => {
    const store = newStore({ ttl: 0 });
    const id = randomUUID();
    store.commit(id, { provider: 'P' });
    vi.advanceTimersByTime(30 * 86_400_000);
    store.purgeStale();
    expect(store.peek(id)?.provider).toBe('P');
    expect(evictions).toEqual([]);
  });
});

describe('max bound', () => {
  it('evicts the least recently used context and disposes its clients', async () => {
    const store = newStore({ max: 3, ttl: 0 });
    const ids = Array.from({ length: 5 }, () => randomUUID());
    const llms = ids.map(() => fakeClient());
    ids.slice(0, 3).forEach((id, i) => store.commit(id, { llmInstance: llms[i]! }));
    vi.advanceTimersByTime(10);
    runAsUser(ids[0]!, () => undefined, { store }); // ids[1] becomes the least recently used
    store.commit(ids[3]!, { llmInstance: llms[3]! });
    store.commit(ids[4]!, { llmInstance: llms[4]! });
    await flush();

    expect(evictions).toEqual([[ids[1], 'evicted'], [ids[2], 'evicted']]);
    expect(llms.map((l) => l.closed)).toEqual([0, 1, 1, 0, 0]);
    expect([...store.entries()].map((e) => e.userUuid)).toEqual([ids[4], ids[3], ids[0]]);
  });
});
