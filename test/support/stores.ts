/** Stores made by a test file, all closed after each test. */
import { afterEach } from 'vitest';
import { ContextStore, setDefaultStore, type ContextStoreOptions } from '../../src/index.js';

/**
 * Returns a factory of stores that are closed after every test. With
 * `asDefault`, each new store also becomes the default store (for helpers
 * called outside a scope or with an explicit user id).
 */
export function useStores(options: { asDefault?: boolean } = {}): (storeOptions?: ContextStoreOptions) => ContextStore {
  const stores: ContextStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  return (storeOptions = {}) => {
    const store = new ContextStore(storeOptions);
    stores.push(store);
    if (options.asDefault === true) setDefaultStore(store);
    return store;
  };
}
