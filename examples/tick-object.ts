/**
 * Keeps `process.nextTick` on its fast path for the life of the process (Node 22 and 24).
 *
 * Node 22 and 24 build every nextTick entry as an object literal with computed keys
 * (`{ [async_id_symbol]: …, [trigger_async_id_symbol]: …, [async_context_frame]: …, callback, args }`).
 * The hidden classes (maps) V8 makes for that literal are held only weakly: by the
 * transition tree, by inline caches, and for two full GCs by V8's retained-maps list.
 * Tick objects live for a few microseconds, so when a few full GCs run while no tick is
 * queued (at startup, between bursts of traffic), those maps die, and the next tick builds
 * new ones. After a handful of such generations the inline caches of the literal's second to
 * fifth keys go MEGAMORPHIC and stay there: from then on TurboFan defines those keys through
 * `Runtime_DefineKeyedOwnPropertyInLiteral`, on every tick of every request (an HTTP request
 * makes seven). On the bench's servers that is 3–8 µs per request, and which processes end up
 * there looks like a lottery: it follows heap timing, moved by anything from a second listener
 * on `process` to a logger. `bench/next-tick-state.ts` shows it per server.
 *
 * One tick object kept alive keeps its map, and through the maps' back pointers the literal's
 * whole chain of maps, so the caches stay monomorphic. Node 26 builds ticks with a class
 * (`new TickObject(…)`), whose map its constructor holds; there this keeps one small object
 * and changes nothing else.
 *
 * Call it once at startup, before serving and outside any request: the tick object holds the
 * async context current when it was made (at top level, none).
 */
import { createHook } from 'node:async_hooks';

let retained: object | undefined;

function noop(): void {}

/**
 * Makes one `process.nextTick` entry and keeps its tick object for the life of the process
 * (the `init` hook of `node:async_hooks` hands it over; the hook is enabled only around that
 * one call). Calling it again does nothing.
 *
 * @returns whether a tick object is retained (false only on a Node whose nextTick reports none).
 */
export function retainTickObject(): boolean {
  if (retained !== undefined) return true;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') retained ??= resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
  return retained !== undefined;
}
