/** store.close(): drain in-flight scopes (bounded), then dispose every client exactly once. */
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  StoreClosedError,
  configureUser,
  getUserLlmInstance,
  runAsUser,
  userContext,
} from '../src/index.js';
import { expectAuthError, flush } from './support/app.js';
import { clientFactory, fakeClient, type FakeClient } from './support/resources.js';
import { SECRET, tokenFor } from './support/tokens.js';

const stores: ContextStore[] = [];
function newStore(options: ConstructorParameters<typeof ContextStore>[0] = {}): ContextStore {
  const store = new ContextStore(options);
  stores.push(store);
  return store;
}
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close({ timeout: 100 })));
});

describe('store.close()', () => {
  it('disposes every client of every user and of the process-wide context exactly once', async () => {
    const llms = clientFactory();
    const store = newStore({ resources: { llmInstance: { create: llms.create } } });
    const shared = fakeClient('mcp');
    const global = fakeClient();
    const ids = Array.from({ length: 20 }, () => randomUUID());
    for (const id of ids) {
      await runAsUser(id, async () => {
        await configureUser({ provider: 'p', model: id, mcpClient: fakeClient('mcp') });
        getUserLlmInstance();
        await configureUser({ mcpServerName: 'x' }); // drops that mcp client
      }, { store });
    }
    store.commit(ids[0]!, { mcpClient: shared });
    store.commit(null, { llmInstance: global });
    for (let i = 0; i < 5; i++) store.commit(ids[0]!, { model: `m${i}` }); // shared survives model changes

    await store.close();
    expect(llms.built).toHaveLength(20);
    expect(llms.built.map((c) => c.closed)).toEqual(Array(20).fill(1));
    expect(shared.closed).toBe(1);
    expect(global.closed).toBe(1);
    expect(store.size).toBe(0);

    const again = store.close();
    expect(again).toBe(store.close());
    await again;
    expect(llms.built.every((c) => c.closed === 1)).toBe(true);
    expect([shared.closed, global.closed]).toEqual([1, 1]);
  });

  it('waits for in-flight scopes; their clients are disposed only after they end', async () => {
    const llms = clientFactory();
    const store = newStore({ resources: { llmInstance: { create: llms.create } } });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const inFlight = runAsUser(randomUUID(), async () => {
      const llm = getUserLlmInstance() as FakeClient;
      await released;
      return { llm, closedDuringScope: llm.closed, sameLlm: getUserLlmInstance() === llm };
    }, { store });

    let closed = false;
    const closing = store.close({ timeout: 10_000 }).then(() => (closed = true));
    await flush();
    expect(store.closed).toBe(true);
    expect(closed).toBe(false);
    expect(llms.built[0]!.closed).toBe(0);
    expect(() => runAsUser(randomUUID(), () => 1, { store })).toThrow(StoreClosedError);

    release();
    const result = await inFlight;
    await closing;
    expect(result.closedDuringScope).toBe(0);
    expect(result.sameLlm).toBe(true);
    expect(result.llm.closed).toBe(1);
    expect(store.scopesInFlight).toBe(0);
  });

  it('gives up waiting after the timeout, then disposes anyway', async () => {
    const store = newStore();
    const llm = fakeClient();
    let release!: () => void;
    const stuck = runAsUser(randomUUID(), async () => {
      await configureUser({ llmInstance: llm });
      await new Promise<void>((r) => (release = r));
    }, { store });

    await store.close({ timeout: 50 });
    expect(llm.closed).toBe(1);
    expect(store.scopesInFlight).toBe(0);
    release();
    await stuck; // ending the scope later is harmless
    await flush();
    expect(llm.closed).toBe(1);
  });

  it('makes the middleware answer 503 shutting_down', async () => {
    const store = newStore();
    const app = new Koa();
    app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    await store.close();
    const res = await request(app.callback()).get('/').set('Authorization', `Bearer ${tokenFor(randomUUID())}`);
    expectAuthError(res, 503, 'shutting_down', [SECRET]);
    expect(res.headers['retry-after']).toBe('5');
    expect(store.size).toBe(0);
  });
});
