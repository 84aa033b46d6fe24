/**
 * A context evicted (manually, by TTL or by the LRU bound) while a request
 * still uses it: the request keeps its snapshot and its client, which is
 * disposed exactly once, when the request ends.
 */
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ContextStore,
  currentUserUuid,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  runAsUser,
  userContext,
  type ContextStoreOptions,
  type EvictionReason,
} from '../src/index.js';
import { flush, listen } from './support/app.js';
import { clientFactory, type FakeClient } from './support/resources.js';
import { SECRET, tokenFor } from './support/tokens.js';

const stores: ContextStore[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

function setup(options: ContextStoreOptions = {}) {
  const llms = clientFactory();
  const evictions: [string, EvictionReason][] = [];
  const store = new ContextStore({
    ...options,
    resources: { llmInstance: { create: llms.create } },
    onEvict: (id, why) => evictions.push([id, why]),
  });
  stores.push(store);
  return { store, llms, evictions };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * Opens a scope for `id` that reads its provider, model and client, waits for
 * `held`, then reads them again.
 */
function holdingRequest(store: ContextStore, id: string, held: Promise<void>) {
  return runAsUser(id, async () => {
    const before = { provider: getUserProvider(), model: getUserModel(), llm: getUserLlmInstance() as FakeClient };
    await held;
    const after = { provider: getUserProvider(), model: getUserModel(), llm: getUserLlmInstance() as FakeClient };
    return { before, after, closedWhileHeld: after.llm.closed };
  }, { store });
}

async function expectSnapshotKept(
  run: ReturnType<typeof holdingRequest>,
  held: { open: () => void },
  llms: ReturnType<typeof clientFactory>,
): Promise<void> {
  await flush();
  const llm = llms.built[0]!;
  expect(llm.closed).toBe(0);
  held.open();
  const { before, after, closedWhileHeld } = await run;
  expect(after).toEqual(before);
  expect(after).toMatchObject({ provider: 'Google', model: 'gemini' });
  expect(after.llm).toBe(llm);
  expect(closedWhileHeld).toBe(0);
  await flush();
  expect(llm.closed).toBe(1);
}

describe('eviction while a request holds the context', () => {
  it('store.evict(): the request keeps its snapshot; the client is disposed once, after it ends', async () => {
    const { store, llms, evictions } = setup();
    const id = randomUUID();
    store.commit(id, { provider: 'Google', model: 'gemini' });
    const held = gate();
    const run = holdingRequest(store, id, held.promise);

    expect(store.evict(id)).toBe(true);
    expect(evictions).toEqual([[id, 'manual']]);
    expect(store.has(id)).toBe(false);
    await expectSnapshotKept(run, held, llms);

    // The next request starts a fresh context with a fresh client.
    const fresh = runAsUser(id, () => [getUserProvider(), getUserLlmInstance()], { store });
    expect(fresh[0]).toBeNull();
    expect(fresh[1]).not.toBe(llms.built[0]);
    await store.close();
    expect(llms.built[0]!.closed).toBe(1);
    expect(llms.built[1]!.closed).toBe(1);
  });

  it('TTL expiry: same guarantees', async () => {
    vi.useFakeTimers();
    const { store, llms, evictions } = setup({ ttl: 1_000, sweepInterval: 0 });
    const id = randomUUID();
    store.commit(id, { provider: 'Google', model: 'gemini' });
    const held = gate();
    const run = holdingRequest(store, id, held.promise);

    vi.advanceTimersByTime(1_001);
    store.purgeStale();
    expect(evictions).toEqual([[id, 'expired']]);
    expect(store.has(id)).toBe(false);
    await expectSnapshotKept(run, held, llms);
  });

  it('LRU bound: same guarantees', async () => {
    const { store, llms, evictions } = setup({ max: 2 });
    const id = randomUUID();
    store.commit(id, { provider: 'Google', model: 'gemini' });
    const held = gate();
    const run = holdingRequest(store, id, held.promise);

    store.currentGeneration(randomUUID());
    store.currentGeneration(randomUUID());
    expect(evictions).toEqual([[id, 'evicted']]);
    await expectSnapshotKept(run, held, llms);
  });

  it('over HTTP: an in-flight request is served from its snapshot after eviction', async () => {
    const { store, llms } = setup();
    const id = randomUUID();
    store.commit(id, { provider: 'Google', model: 'gemini' });
    const entered = gate();
    const held = gate();
    const app = new Koa();
    app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
    app.use(async (ctx) => {
      const llm = getUserLlmInstance() as FakeClient;
      entered.open();
      await held.promise;
      ctx.body = { user: currentUserUuid(), provider: getUserProvider(), model: getUserModel(), closed: llm.closed, same: getUserLlmInstance() === llm };
    });
    const server = await listen(app);
    try {
      const pending = request(server.server).get('/').set('Authorization', `Bearer ${tokenFor(id)}`).then((r) => r);
      await entered.promise;
      store.evict(id);
      await flush();
      expect(llms.built[0]!.closed).toBe(0);
      held.open();
      const res = await pending;
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ user: id, provider: 'Google', model: 'gemini', closed: 0, same: true });
      await vi.waitFor(() => expect(llms.built[0]!.closed).toBe(1));
      expect(store.scopesInFlight).toBe(0);
    } finally {
      await server.close();
    }
  });
});
