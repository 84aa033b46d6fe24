/**
 * The default store: used by the middleware and the helpers when no store is
 * given. Kept on `globalThis` under a registered symbol, like the
 * AsyncLocalStorage, so a duplicated copy of the package shares it.
 *
 * @module
 */
import { ContextStore } from './store.js';

const KEY = Symbol.for('koa-user-context.default-store.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: ContextStore };

/** The default store, created with default options on first use. */
export function getDefaultStore(): ContextStore {
  return (holder[KEY] ??= new ContextStore());
}

/**
 * Makes `store` the default one (helpers called with an explicit user id or
 * outside any scope use it). Returns the previous default, if any.
 */
export function setDefaultStore(store: ContextStore): ContextStore | undefined {
  if (!(store instanceof ContextStore)) throw new TypeError('setDefaultStore() takes a ContextStore');
  const previous = holder[KEY];
  holder[KEY] = store;
  return previous;
}
