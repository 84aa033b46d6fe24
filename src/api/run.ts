/**
 * Entering a user scope outside HTTP: background jobs, websockets, queues,
 * tests (`runAsUser`), and carrying the current scope into callbacks that are
 * called later from elsewhere (`bindToCurrentUser`, `bindHandlerToCurrentUser`).
 *
 * @module
 */
import { als } from '../store/als.js';
import { getDefaultStore } from '../store/default-store.js';
import { UserContextMissingError } from '../errors.js';
import type { Scope } from '../store/scope.js';
import type { ContextStore } from '../store/store.js';

/** Options of {@link runAsUser}. */
export interface RunAsUserOptions {
  /**
   * Store holding the user's context.
   * @default the current scope's store, else the default store
   */
  store?: ContextStore;
  /**
   * Claims to expose through `currentUserClaims()`.
   * @default undefined
   */
  claims?: Readonly<Record<string, unknown>>;
  /**
   * Abort signal exposed through `getRequestSignal()` (e.g. a job's
   * cancellation).
   * @default undefined
   */
  signal?: AbortSignal;
}

/**
 * Runs `fn` as `userUuid`: every helper inside it (across awaits) answers for
 * that user. The scope holds a lease on the user's configuration until `fn`
 * returns or, if it returns a promise, until the promise settles.
 *
 * With a shared store (`RedisContextStore`) whose near-cache does not hold
 * the user, the context is loaded first and the result is a promise even if
 * `fn` is synchronous: pass an async `fn` and await the result.
 *
 * ```ts
 * await runAsUser(userUuid, async () => { await nightlyReport(); });
 * ```
 */
export function runAsUser<R>(userUuid: string, fn: () => R, options: RunAsUserOptions = {}): R {
  if (typeof fn !== 'function') throw new TypeError('runAsUser(userUuid, fn): fn must be a function');
  const store = options.store ?? als.getStore()?.store ?? getDefaultStore();
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError('runAsUser(): options.signal must be an AbortSignal');
  }
  const { signal } = options;
  const start = (scope: Scope): R => {
    if (signal !== undefined) scope.setSignalSource(signal);
    return runInScope(scope, fn, true);
  };
  const opened = store.acquireScope(store.parseUserId(userUuid), options.claims);
  if (opened instanceof Promise) return opened.then(start) as R;
  return start(opened);
}

/** Runs `fn` in `scope`; with `closeAfter`, closes the scope once `fn` is done. @internal */
export function runInScope<R>(scope: Scope, fn: () => R, closeAfter: boolean): R {
  let result: R;
  try {
    result = als.run(scope, fn);
  } catch (error) {
    if (closeAfter) scope.close();
    throw error;
  }
  if (!closeAfter) return result;
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    return (result as PromiseLike<unknown>).then(
      (value) => {
        scope.close();
        return value;
      },
      (error: unknown) => {
        scope.close();
        throw error;
      },
    ) as R;
  }
  scope.close();
  return result;
}

/**
 * Wraps `fn` so that, whenever it is called later (by an EventEmitter, a
 * timer, a connection pool), it runs as the user of the current scope: in the
 * very same scope while that request is still in flight, or in a new scope
 * on the user's current configuration once it has ended.
 *
 * ```ts
 * emitter.on('data', bindToCurrentUser((chunk) => log(getUserModel(), chunk)));
 * ```
 */
export function bindToCurrentUser<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  if (typeof fn !== 'function') throw new TypeError('bindToCurrentUser(fn): fn must be a function');
  const scope = scopeToBind('bindToCurrentUser', 'registers the callback');
  if (scope === null) return fn;
  return function boundToUser(this: unknown, ...args: A): R {
    return reenter(scope, () => fn.apply(this, args));
  };
}

/**
 * Binds every method of `handler` (own and inherited, called by whoever
 * holds the handler, whenever) to the user of the current scope, as
 * {@link bindToCurrentUser} binds one function. For objects a framework
 * calls back from its own queue or timer, where the async context is
 * whichever run advanced that queue — another user's: LangChain callback
 * handlers in their default background mode, tracing processors, run hooks.
 *
 * Returns a `Proxy` of `handler`: other properties (`name`, `awaitHandlers`,
 * `ignoreLLM`, …) read through unchanged, methods run on `handler` itself
 * (so `#private` fields work) inside the user's scope. Bind per request
 * (it is cheap); a handler object may be shared by all users.
 *
 * ```ts
 * await agent.invoke(input, { callbacks: [bindHandlerToCurrentUser(usageHandler)] });
 * ```
 */
export function bindHandlerToCurrentUser<T extends object>(handler: T): T {
  if (handler === null || (typeof handler !== 'object' && typeof handler !== 'function')) {
    throw new TypeError('bindHandlerToCurrentUser(handler): handler must be an object whose methods are callbacks');
  }
  const scope = scopeToBind('bindHandlerToCurrentUser', 'passes the handler on');
  if (scope === null) return handler;
  const bound = new Map<PropertyKey, { fn: Function; wrapper: Function }>();
  return new Proxy(handler, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== 'function' || key === 'constructor') return value;
      const cached = bound.get(key);
      if (cached !== undefined && cached.fn === value) return cached.wrapper;
      const fn = value as (...args: unknown[]) => unknown;
      const wrapper = function boundToUser(this: unknown, ...args: unknown[]): unknown {
        return reenter(scope, () => fn.apply(target, args));
      };
      bound.set(key, { fn, wrapper });
      return wrapper;
    },
  });
}

/**
 * The scope a `bind…()` call binds to: the current one; `null` outside any
 * scope when the store answers process-wide (nothing to bind); else the
 * `contextMissing` event and a `UserContextMissingError`. @internal
 */
export function scopeToBind(fn: string, what: string): Scope | null {
  const scope = als.getStore();
  if (scope !== undefined) return scope;
  const store = getDefaultStore();
  if (store.globalOutsideScope) return null;
  store.events.emit('contextMissing', { fn });
  throw new UserContextMissingError(
    `${fn}() was called outside a user scope, so there is no user to bind. ` +
      `Call it while handling the request (or inside runAsUser(userUuid, fn)) that ${what}.`,
  );
}

/**
 * Runs `fn` as the user of `scope`: in that very scope while it is open, in a
 * new scope on the user's current configuration after it ended (loading the
 * context first with a shared store: the result is then a promise).
 * `bindToCurrentUser()` and `bindAsyncIterable()` both re-enter through it. @internal
 */
export function reenter<R>(scope: Scope, fn: () => R): R {
  if (scope.open) return runInScope(scope, fn, false);
  const opened = scope.store.acquireScope(scope.userUuid, scope.claims);
  if (opened instanceof Promise) return opened.then((next) => runInScope(next, fn, true)) as R;
  return runInScope(opened, fn, true);
}
