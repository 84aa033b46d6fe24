import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  ContextStore,
  StoreClosedError,
  configureUser,
  getUserModel,
  getUserProvider,
  getUserRuntimeContext,
  runAsUser,
  setDefaultStore,
  setUserModel,
  setUserProvider,
  type EvictionReason,
} from '../src/index.js';
import { useStores } from './support/stores.js';

const newStore = useStores();

describe('ContextStore options', () => {
  it.each([
    ['max 0', { max: 0 }],
    ['max 1.5', { max: 1.5 }],
    ['negative ttl', { ttl: -1 }],
    ['infinite ttl', { ttl: Infinity }],
    ['negative sweepInterval', { sweepInterval: -5 }],
    ['unknown mode', { mode: 'both' }],
    ['unknown outsideScope', { outsideScope: 'ignore' }],
    ['defaults holding a live client', { defaults: { llmInstance: {} } }],
    ['create that is not a function', { resources: { llmInstance: { create: 'make' } } }],
    ['dispose that is not a function', { resources: { mcpClient: { dispose: 1 } } }],
    ['dependsOn that is not an array', { resources: { llmInstance: { dependsOn: 'model' } } }],
  ])('rejects %s with a TypeError', (_name, options) => {
    expect(() => new ContextStore(options as never)).toThrow(TypeError);
  });

  it('takes its mode from KOA_USER_CONTEXT_MODE unless the option says otherwise', () => {
    vi.stubEnv('KOA_USER_CONTEXT_MODE', 'single-user');
    expect(newStore().mode).toBe('single-user');
    expect(newStore({ mode: 'multi-user' }).mode).toBe('multi-user');
    vi.stubEnv('KOA_USER_CONTEXT_MODE', '');
    expect(newStore().mode).toBe('multi-user');
    vi.stubEnv('KOA_USER_CONTEXT_MODE', 'everyone');
    expect(() => new ContextStore()).toThrow(/KOA_USER_CONTEXT_MODE/);
  });

  it('defaults to multi-user mode when the variable is unset', () => {
    vi.stubEnv('KOA_USER_CONTEXT_MODE', undefined);
    expect(newStore().mode).toBe('multi-user');
  });
});

describe('per-user isolation (seed design)', () => {
  it('keeps provider and model of two users apart when written with explicit ids', async () => {
    const store = newStore();
    setDefaultStore(store);
    const a = randomUUID();
    const b = randomUUID();
    await setUserProvider('Google', a);
    await setUserModel('gemini-2.5-flash', a);
    await setUserProvider('OpenAI', b);
    await setUserModel('gpt-4o', b);

    expect(getUserProvider(a)).toBe('Google');
    expect(getUserModel(a)).toBe('gemini-2.5-flash');
    expect(getUserProvider(b)).toBe('OpenAI');
    expect(getUserModel(b)).toBe('gpt-4o');
    expect(store.size).toBe(2);
  });

  it('treats upper- and lower-case spellings of a UUID as one user', async () => {
    const store = newStore();
    setDefaultStore(store);
    const id = randomUUID();
    await setUserProvider('Anthropic', id.toUpperCase());
    expect(getUserProvider(id)).toBe('Anthropic');
    expect(store.size).toBe(1);
    expect(store.has(id)).toBe(true);
  });

  it('gives a new user the defaults, not another user\'s values', async () => {
    const store = newStore({ defaults: { provider: 'Default' } });
    const a = randomUUID();
    await runAsUser(a, () => configureUser({ provider: 'Mine', model: 'm' }), { store });
    const view = runAsUser(randomUUID(), () => getUserRuntimeContext(), { store });
    expect(view.provider).toBe('Default');
    expect(view.model).toBeNull();
  });
});

describe('inspection', () => {
  it('peek and has neither create a context nor refresh it', () => {
    const store = newStore();
    const id = randomUUID();
    expect(store.peek(id)).toBeUndefined();
    expect(store.has(id)).toBe(false);
    expect(store.size).toBe(0);
  });

  it('lists entries most recently used first', () => {
    const store = newStore();
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of [a, b, c]) store.currentGeneration(id);
    store.currentGeneration(a);
    expect([...store.entries()].map((e) => e.userUuid)).toEqual([a, c, b]);
  });

  it('gives a frozen view whose version counts committed changes', async () => {
    const store = newStore();
    const id = randomUUID();
    const view = await runAsUser(id, async () => {
      await configureUser({ provider: 'p1' });
      await configureUser({ model: 'm1' });
      return getUserRuntimeContext();
    }, { store });
    expect(view).toMatchObject({ userUuid: id, provider: 'p1', model: 'm1', version: 2 });
    expect(view.lastAccess).toBeInstanceOf(Date);
    expect(Object.isFrozen(view)).toBe(true);
    expect(store.peek(id)?.version).toBe(2);
  });
});

describe('eviction', () => {
  it('evict() removes a context, reports it and a later access starts from defaults', async () => {
    const reasons: [string, EvictionReason][] = [];
    const store = newStore({ onEvict: (id, why) => reasons.push([id, why]) });
    setDefaultStore(store);
    const id = randomUUID();
    await setUserProvider('Google', id);

    expect(store.evict(id)).toBe(true);
    expect(store.evict(id)).toBe(false);
    expect(store.has(id)).toBe(false);
    expect(reasons).toEqual([[id, 'manual']]);
    expect(getUserProvider(id)).toBeNull();
  });

  it('max bounds the number of contexts and evicts the least recently used', () => {
    const reasons: [string, EvictionReason][] = [];
    const store = newStore({ max: 3, onEvict: (id, why) => reasons.push([id, why]) });
    const ids = Array.from({ length: 4 }, () => randomUUID());
    for (const id of ids.slice(0, 3)) store.commit(id, { provider: `p-${id}` });
    store.currentGeneration(ids[0]!); // ids[1] is now the least recently used
    store.commit(ids[3]!, { provider: `p-${ids[3]}` });

    expect(store.size).toBe(3);
    expect(store.has(ids[1]!)).toBe(false);
    expect(reasons).toEqual([[ids[1], 'evicted']]);
    for (const id of [ids[0]!, ids[2]!, ids[3]!]) expect(store.peek(id)?.provider).toBe(`p-${id}`);
  });
});

describe('closed store', () => {
  it('refuses new scopes with StoreClosedError', async () => {
    const store = newStore();
    await store.close();
    expect(store.closed).toBe(true);
    expect(() => runAsUser(randomUUID(), () => 1, { store })).toThrow(StoreClosedError);
    expect(() => store.openScope(randomUUID())).toThrow(expect.objectContaining({ code: 'ERR_STORE_CLOSED' }));
  });
});
