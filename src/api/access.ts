/**
 * The one read path and the one write path. Every entry point that reads or
 * writes a user's context goes through here: the helpers, the legacy
 * `APP_CONFIG` / `APP_STATE` globals, the log mixin, `bindToCurrentUser()` and
 * `bindAsyncIterable()`. So they all agree on which configuration a piece of
 * code sees, inside its request and after it ended.
 *
 * @internal
 * @module
 */
import type { ContextPatch } from '../context/types.js';
import { UserContextMissingError } from '../errors.js';
import { als } from '../store/als.js';
import { getDefaultStore } from '../store/default-store.js';
import type { Generation } from '../store/generation.js';
import type { Scope } from '../store/scope.js';
import type { ContextStore } from '../store/store.js';
import { warnOnce } from '../warn.js';

/** The store a helper called outside any scope uses, or the error it throws. */
export function outsideScope(fn: string): ContextStore {
  const store = getDefaultStore();
  if (store.globalOutsideScope) return store;
  store.events.emit('contextMissing', { fn });
  throw new UserContextMissingError(
    `${fn}() was called outside a user scope while the store is in multi-user mode. ` +
      'Call it while handling a request that passed the userContext() middleware, inside runAsUser(userUuid, fn), ' +
      `or from a callback wrapped with bindToCurrentUser(); or pass the user id explicitly: ${fn}(…, userUuid).`,
  );
}

/**
 * The generation a scope reads: its snapshot while it is open. Work that
 * outlives its scope (fire-and-forget) reads the user's current generation
 * instead, never a released snapshot (unless the store is closed: then the
 * snapshot is all there is).
 */
export function scopeGeneration(scope: Scope): Generation {
  return scope.open || scope.store.closed ? scope.gen : scope.store.currentGeneration(scope.userUuid);
}

/** The generation a read of the current (or given) user sees. */
export function readGeneration(userUuid: string | undefined, fn: string): Generation {
  const scope = als.getStore();
  if (userUuid === undefined) {
    if (scope !== undefined) return scopeGeneration(scope);
    return outsideScope(fn).globalGeneration();
  }
  if (scope !== undefined && scope.open && scope.userUuid === userUuid) return scope.gen;
  const store = scope?.store ?? getDefaultStore();
  const id = store.parseUserId(userUuid);
  if (scope !== undefined && scope.open && scope.userUuid === id) return scope.gen;
  return store.currentGeneration(id);
}

/**
 * The generation the current code reads, without throwing: the scope's (as
 * {@link readGeneration}), else the process-wide one when `global` is set,
 * else `undefined`. For readers that must never fail (log lines, legacy
 * globals outside any scope).
 */
export function peekGeneration(global: boolean): Generation | undefined {
  const scope = als.getStore();
  if (scope !== undefined) {
    try {
      return scopeGeneration(scope);
    } catch {
      return scope.gen;
    }
  }
  return global ? getDefaultStore().globalGeneration() : undefined;
}

/**
 * Applies a patch for the current (or given) user. A shared store returns a
 * promise settled once the write is stored; callers await it.
 */
export function writePatch(patch: ContextPatch, userUuid: string | undefined, fn: string): Generation | Promise<Generation> {
  const scope = als.getStore();
  if (userUuid === undefined) {
    if (scope !== undefined) return scope.store.write(scope.userUuid, patch, scope);
    return outsideScope(fn).write(null, patch);
  }
  const store = scope?.store ?? getDefaultStore();
  const id = store.parseUserId(userUuid);
  return store.write(id, patch, scope !== undefined && scope.userUuid === id ? scope : undefined);
}

/**
 * A write that cannot be awaited (a legacy global's setter): applied through
 * {@link writePatch}; with a shared store it is stored asynchronously, in
 * order, and a failure is reported as a `KUC_UNAWAITED_WRITE_FAILED` warning
 * and a `writeFailed` event instead of being lost silently.
 */
export function writeUnawaited(patch: ContextPatch, where: string): void {
  const scope = als.getStore();
  const written = scope !== undefined ? writePatch(patch, undefined, where) : getDefaultStore().write(null, patch);
  if (written instanceof Promise) {
    written.then(undefined, (error: unknown) => {
      const store = scope?.store ?? getDefaultStore();
      store.events.emit('writeFailed', { userUuid: scope?.userUuid ?? null, where, code: (error as { code?: string }).code ?? 'ERR_UNKNOWN' });
      warnOnce(
        'KUC_UNAWAITED_WRITE_FAILED',
        `${where} could not be stored (${error instanceof Error ? error.message : String(error)}); nothing was applied. ` +
          'Writes through the legacy globals cannot be awaited: migrate this call site to the awaited setter.',
        `KUC_UNAWAITED_WRITE_FAILED|${where}`,
      );
    });
  }
}
