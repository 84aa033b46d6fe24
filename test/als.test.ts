/**
 * The AsyncLocalStorage and the default store live on globalThis under
 * registered symbols, so two copies of the package in one process share them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as first from '../src/index.js';
import { als } from '../src/store/als.js';
import { randomDelay } from './support/app.js';

const ALS_KEY = Symbol.for('koa-user-context.als.v1');
const STORE_KEY = Symbol.for('koa-user-context.default-store.v1');
const globals = globalThis as unknown as Record<symbol, unknown>;

const stores: first.ContextStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe('one AsyncLocalStorage per process', () => {
  it('is the object at globalThis[Symbol.for("koa-user-context.als.v1")]', () => {
    expect(als).toBeInstanceOf(AsyncLocalStorage);
    expect(globals[ALS_KEY]).toBe(als);
  });

  it('holds the scope runAsUser opens', () => {
    const store = new first.ContextStore();
    stores.push(store);
    const id = randomUUID();
    const seen = first.runAsUser(id, () => (globals[ALS_KEY] as AsyncLocalStorage<{ userUuid: string }>).getStore()?.userUuid, { store });
    expect(seen).toBe(id);
  });

  it('a second copy of the package shares scopes and the default store with the first', async () => {
    const store = new first.ContextStore();
    stores.push(store);
    first.setDefaultStore(store);

    vi.resetModules();
    const second = (await import('../src/index.js')) as typeof first;
    const secondAls = (await import('../src/store/als.js')).als;
    expect(second.runAsUser).not.toBe(first.runAsUser); // really another copy
    expect(second.ContextStore).not.toBe(first.ContextStore);
    expect(secondAls).toBe(als);
    expect(second.getDefaultStore()).toBe(store);
    expect(globals[STORE_KEY]).toBe(store);

    const other = new second.ContextStore();
    stores.push(other as unknown as first.ContextStore);
    const [a, b] = [randomUUID(), randomUUID()];
    const results = await Promise.all([
      second.runAsUser(a, async () => {
        await randomDelay(5);
        await first.configureUser({ provider: 'set-by-first' });
        await randomDelay(5);
        return [first.currentUserUuid(), second.getUserProvider()];
      }, { store: other }),
      first.runAsUser(b, async () => {
        await randomDelay(5);
        await second.configureUser({ provider: 'set-by-second' });
        await randomDelay(5);
        return [second.currentUserUuid(), first.getUserProvider()];
      }, { store }),
    ]);
    expect(results).toEqual([[a, 'set-by-first'], [b, 'set-by-second']]);
    expect(other.peek(a)?.provider).toBe('set-by-first');
    expect(store.peek(b)?.provider).toBe('set-by-second');
  });
});
