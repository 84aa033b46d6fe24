/**
 * Keeping the user scope in async iterators. An async generator runs in the
 * async context of whoever calls its `next()`, not of whoever created it; a
 * stream built with `Readable.from(generator())` and returned as a Koa body
 * is pulled by Koa after the middleware chain returned, outside the user's
 * scope. `bindAsyncIterable()` calls every `next()` / `return()` / `throw()`
 * inside the scope that was current when it was called.
 *
 * ```ts
 * ctx.body = Readable.from(bindAsyncIterable(llm.stream(prompt, { signal: getRequestSignal() })));
 * ```
 *
 * @module
 */
import { reenter, scopeToBind } from './run.js';

/**
 * Wraps an async iterable so that iterating it runs as the current user: in
 * the very same scope while it is open (the userContext middleware keeps a
 * request's scope open until a streamed response is written), in a new scope
 * on the user's current configuration after it ended.
 */
export function bindAsyncIterable<T, TReturn = unknown, TNext = undefined>(
  iterable: AsyncIterable<T, TReturn, TNext>,
): AsyncIterableIterator<T, TReturn, TNext> {
  if (iterable == null || typeof (iterable as Partial<AsyncIterable<T>>)[Symbol.asyncIterator] !== 'function') {
    throw new TypeError('bindAsyncIterable(iterable): iterable must be an async iterable (e.g. an async generator)');
  }
  const scope = scopeToBind('bindAsyncIterable', 'creates the iterable');
  if (scope === null) return toIterator(iterable);
  let inner: AsyncIterator<T, TReturn, TNext> | undefined;
  const get = (): AsyncIterator<T, TReturn, TNext> => (inner ??= iterable[Symbol.asyncIterator]());
  const run = <R>(fn: () => R): R => reenter(scope, fn);
  const bound: AsyncIterableIterator<T, TReturn, TNext> = {
    next: (...args: [] | [TNext]) => run(() => get().next(...args)),
    return: (value?: TReturn | PromiseLike<TReturn>) =>
      run(() => {
        const it = get();
        return it.return !== undefined
          ? it.return(value)
          : Promise.resolve(value).then((v) => ({ done: true as const, value: v as TReturn }));
      }),
    throw: (error?: unknown) =>
      run(() => {
        const it = get();
        return it.throw !== undefined ? it.throw(error) : Promise.reject(error);
      }),
    [Symbol.asyncIterator]() {
      return bound;
    },
  };
  return bound;
}

function toIterator<T, TReturn, TNext>(iterable: AsyncIterable<T, TReturn, TNext>): AsyncIterableIterator<T, TReturn, TNext> {
  const it = iterable[Symbol.asyncIterator]();
  if (typeof (it as Partial<AsyncIterableIterator<T, TReturn, TNext>>)[Symbol.asyncIterator] === 'function') {
    return it as AsyncIterableIterator<T, TReturn, TNext>;
  }
  const wrapped = Object.create(it) as AsyncIterableIterator<T, TReturn, TNext>;
  wrapped[Symbol.asyncIterator] = () => wrapped;
  return wrapped;
}
