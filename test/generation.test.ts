/**
 * Resource lifetime: a live client belongs to the configuration that built it,
 * is shared with later configurations that do not change what it depends on,
 * and is disposed exactly once, never while a scope still reads it.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  configureUser,
  getUserLlmInstance,
  getUserMcpClient,
  getUserModel,
  getUserProvider,
  runAsUser,
  setUserLlmInstance,
  setUserMcpClient,
  setUserModel,
  ConfigurationConflictError,
} from '../src/index.js';
import { flush } from './support/app.js';
import { clientFactory, fakeClient, type FakeClient } from './support/resources.js';
import { useStores } from './support/stores.js';

const newStore = useStores();

/** A promise and its resolver, to hold a scope open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('the LLM client follows provider and model', () => {
  it('is never one built for another provider/model', async () => {
    const llms = clientFactory();
    const store = newStore({ resources: { llmInstance: { create: llms.create } } });
    const providers = ['Google', 'OpenAI', 'Anthropic'];
    await runAsUser(randomUUID(), async () => {
      for (let i = 0; i < 30; i++) {
        const patch = Math.random() < 0.5
          ? { provider: providers[i % 3]!, model: `m${i % 4}` }
          : { model: `m${Math.floor(Math.random() * 4)}` };
        await configureUser(patch);
        const llm = getUserLlmInstance() as FakeClient;
        expect([llm.provider, llm.model]).toEqual([getUserProvider(), getUserModel()]);
        expect(llm.closed).toBe(0);
        expect(getUserLlmInstance()).toBe(llm); // built once per configuration
      }
    }, { store });
    await flush();
    // Every client but the last was dropped and disposed exactly once.
    expect(llms.built.slice(0, -1).every((c) => c.closed === 1)).toBe(true);
    expect(llms.built.at(-1)!.closed).toBe(0);
  });

  it('a client handed over with setUserLlmInstance is dropped by setUserModel', async () => {
    const store = newStore();
    const llm = fakeClient();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
      await setUserLlmInstance(llm);
      expect(getUserLlmInstance()).toBe(llm);
      await setUserModel('gemini-2.5-pro');
      expect(getUserLlmInstance()).toBeNull();
    }, { store });
    await flush();
    expect(llm.closed).toBe(1);
  });

  it('is kept when a field it does not depend on changes', async () => {
    const store = newStore();
    const llm = fakeClient();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Google', model: 'm', llmInstance: llm });
      await configureUser({ mcpServerName: 'files', serverConfigs: { a: 1 } });
      await configureUser({ model: 'm' }); // same value: not a change
      expect(getUserLlmInstance()).toBe(llm);
    }, { store });
    await flush();
    expect(llm.closed).toBe(0);
  });

  it('honours a custom dependsOn', async () => {
    const store = newStore({ resources: { llmInstance: { dependsOn: ['provider'] } } });
    const llm = fakeClient();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'OpenAI', model: 'a', llmInstance: llm });
      await setUserModel('b');
      expect(getUserLlmInstance()).toBe(llm);
      await configureUser({ provider: 'Anthropic' });
      expect(getUserLlmInstance()).toBeNull();
    }, { store });
    await flush();
    expect(llm.closed).toBe(1);
  });
});

describe('a client handed over from a stale snapshot', () => {
  it('is refused when another request changed what it was built for, many users interleaving', async () => {
    const store = newStore();
    const users = Array.from({ length: 30 }, () => randomUUID());
    const outcomes = await Promise.all(users.map(async (user, i) => {
      await runAsUser(user, () => configureUser({ provider: 'Google', model: 'g-1' }), { store });
      const reading = gate();
      const configured = gate();
      // Request 1 reads its snapshot (Google), then a concurrent request of the
      // same user switches to Anthropic, then request 1 hands over a Google client.
      const first = runAsUser(user, async () => {
        const built = fakeClient('llm', { userUuid: user, provider: getUserProvider(), model: getUserModel() });
        reading.open();
        await configured.promise;
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        if (i % 2 === 0) {
          await expect(setUserLlmInstance(built)).rejects.toBeInstanceOf(ConfigurationConflictError);
          return { built, attached: false };
        }
        // Passing the fields it was built for with it is not stale: it wins as a whole.
        await configureUser({ provider: 'Google', model: 'g-1', llmInstance: built });
        return { built, attached: true };
      }, { store });
      await reading.promise;
      await runAsUser(user, () => configureUser({ provider: 'Anthropic', model: 'a-1' }), { store });
      configured.open();
      return { user, ...(await first) };
    }));
    for (const { user, built, attached } of outcomes) {
      const now = store.peek(user)!;
      if (attached) {
        expect(now).toMatchObject({ provider: 'Google', model: 'g-1' });
        expect(now.llmInstance).toBe(built);
      } else {
        expect(now).toMatchObject({ provider: 'Anthropic', model: 'a-1' });
        expect(now.llmInstance).toBeNull();
        expect(built.closed).toBe(0); // never owned by the context, so never disposed by it
      }
    }
  });
});

describe('the MCP client', () => {
  it('survives model changes and is disposed once when its server changes', async () => {
    const store = newStore();
    const mcp = fakeClient('mcp');
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: 'files', mcpClient: mcp });
      for (let i = 0; i < 5; i++) {
        await configureUser({ provider: `p${i}`, model: `m${i}` });
        expect(getUserMcpClient()).toBe(mcp);
      }
      await flush();
      expect(mcp.closed).toBe(0);
      await configureUser({ mcpServerName: 'search' });
      expect(getUserMcpClient()).toBeNull();
    }, { store });
    await flush();
    expect(mcp.closed).toBe(1);
    await store.close();
    expect(mcp.closed).toBe(1);
  });
});

describe('a replaced client and the scopes still using it', () => {
  it('is disposed exactly once, after the last scope reading it ends', async () => {
    const llms = clientFactory();
    const store = newStore({ resources: { llmInstance: { create: llms.create } } });
    const id = randomUUID();
    store.commit(id, { provider: 'Google', model: 'old' });
    const held = gate();
    const readers = Array.from({ length: 3 }, () =>
      runAsUser(id, async () => {
        const before = getUserLlmInstance() as FakeClient;
        await held.promise;
        return { before, after: getUserLlmInstance() as FakeClient, model: getUserModel() };
      }, { store }),
    );

    await runAsUser(id, () => configureUser({ model: 'new' }), { store });
    await flush();
    const old = llms.built[0]!;
    expect(old.model).toBe('old');
    expect(old.closed).toBe(0);

    held.open();
    const results = await Promise.all(readers);
    for (const r of results) {
      expect(r.before).toBe(old);
      expect(r.after).toBe(old);
      expect(r.model).toBe('old');
    }
    await flush();
    expect(old.closed).toBe(1);
    await store.close();
    expect(old.closed).toBe(1);
  });

  it('setting the client the context already holds again does not dispose it', async () => {
    const store = newStore();
    const llm = fakeClient();
    await runAsUser(randomUUID(), async () => {
      await setUserLlmInstance(llm);
      // A common pattern: reuse the current client or build one, then store it.
      await setUserLlmInstance((getUserLlmInstance() as FakeClient | null) ?? fakeClient());
      await flush();
      expect(getUserLlmInstance()).toBe(llm);
      expect(llm.closed).toBe(0);
    }, { store });
    await store.close();
    expect(llm.closed).toBe(1);
  });
});

describe('lazily built clients', () => {
  it('builds one client per configuration even when create returns a promise', async () => {
    const create = vi.fn(async (cfg: { model: string | null }) => fakeClient('llm', { model: cfg.model }));
    const store = newStore({ resources: { llmInstance: { create } } });
    await runAsUser(randomUUID(), async () => {
      await setUserModel('a');
      const [x, y] = [getUserLlmInstance(), getUserLlmInstance()];
      expect(x).toBe(y);
      expect((await x) as FakeClient).toMatchObject({ model: 'a' });
    }, { store });
    expect(create).toHaveBeenCalledTimes(1);
  });

  it('does not cache a rejected build', async () => {
    let calls = 0;
    const store = newStore({
      resources: {
        llmInstance: {
          create: () => (++calls === 1 ? Promise.reject(new Error('provider down')) : Promise.resolve(fakeClient())),
        },
      },
    });
    await runAsUser(randomUUID(), async () => {
      await expect(getUserLlmInstance() as Promise<unknown>).rejects.toThrow('provider down');
      await flush();
      await expect(getUserLlmInstance() as Promise<FakeClient>).resolves.toMatchObject({ closed: 0 });
    }, { store });
    expect(calls).toBe(2);
  });
});

describe('disposal', () => {
  it('dispose: null never disposes; a custom dispose gets the value and the user', async () => {
    const dispose = vi.fn();
    const store = newStore({ resources: { llmInstance: { dispose }, mcpClient: { dispose: null } } });
    const id = randomUUID();
    const llm = fakeClient();
    const mcp = fakeClient('mcp');
    store.commit(id, { llmInstance: llm, mcpClient: mcp });
    store.evict(id);
    await store.close();
    expect(dispose).toHaveBeenCalledTimes(1);
    expect(dispose).toHaveBeenCalledWith(llm, id);
    expect(llm.closed).toBe(0);
    expect(mcp.closed).toBe(0);
  });

  it('by default prefers Symbol.asyncDispose, then close, then dispose', async () => {
    const store = newStore();
    const calls: string[] = [];
    const a = { [Symbol.asyncDispose]: async () => void calls.push('a:asyncDispose'), close: () => calls.push('a:close') };
    const b = { close: () => calls.push('b:close'), dispose: () => calls.push('b:dispose') };
    store.commit(randomUUID(), { llmInstance: a, mcpClient: b });
    await store.close();
    expect(calls.sort()).toEqual(['a:asyncDispose', 'b:close']);
  });

  it('reports a failing dispose to onDisposeError and keeps going', async () => {
    const onDisposeError = vi.fn();
    const store = newStore({ onDisposeError });
    const id = randomUUID();
    const mcp = fakeClient('mcp');
    store.commit(id, { llmInstance: { close: () => Promise.reject(new Error('boom')) }, mcpClient: mcp });
    await store.close();
    expect(onDisposeError).toHaveBeenCalledTimes(1);
    expect(onDisposeError).toHaveBeenCalledWith(expect.objectContaining({ message: 'boom' }), {
      resource: 'llmInstance',
      userUuid: id,
    });
    expect(mcp.closed).toBe(1);
  });

  it('by default turns a failing dispose into a KUC_DISPOSE_FAILED warning', async () => {
    const warnings: (Error & { code?: string })[] = [];
    const onWarning = (w: Error & { code?: string }): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const store = newStore();
      store.commit(randomUUID(), { llmInstance: { dispose: () => { throw new Error('nope'); } } });
      await store.close();
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.code === 'KUC_DISPOSE_FAILED')).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
