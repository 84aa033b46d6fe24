/**
 * The one AsyncLocalStorage of this library. It lives on `globalThis` under a
 * registered symbol, so two copies of the package loaded in one process (a
 * duplicated dependency) still share it and see each other's scopes.
 *
 * @internal
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Scope } from './scope.js';

const KEY = Symbol.for('koa-user-context.als.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: AsyncLocalStorage<Scope> };

/** The process-wide storage of the current user scope. */
export const als: AsyncLocalStorage<Scope> = (holder[KEY] ??= new AsyncLocalStorage<Scope>());
