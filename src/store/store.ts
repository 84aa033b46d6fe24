/**
 * The in-memory context store: one entry per user in an lru-cache whose
 * sliding TTL evicts inactive users, with atomic commits and resource
 * lifetime tied to the configuration that built each resource.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { BUILTIN_DEFAULTS } from '../context/fields.js';
import type { ContextPatch, ResourceName, UserConfig, UserRuntimeContext } from '../context/types.js';
import { mergeConfig, splitPatch } from '../context/values.js';
import { StoreClosedError } from '../errors.js';
import { createUserIdParser } from '../auth/user-id.js';
import { isKind, stamp } from '../brand.js';
import type { ContextEvents } from './events.js';
import { Generation, viewOf, type GenerationOwner } from './generation.js';
import { OpenScopes } from './open-scopes.js';
import { Loader } from './loader.js';
import type { Persistence } from './persistence.js';
import {
  buildDefaults,
  resolveStoreOptions,
  type ContextMode,
  type ContextStoreOptions,
  type EvictionReason,
  type UserEntry,
} from './options.js';
import { ResourcePolicy, type HandedOver } from './resources.js';
import { Scope } from './scope.js';

export type { ContextMode, ContextStoreOptions, EvictionReason, ResourceSpec, UserEntry } from './options.js';
export type { CommitInfo, ContextPersistence, DeleteInfo, LoadInfo, LoadedContext } from './persistence.js';

const GLOBAL_UUID = '(process-wide)';
const LRU_REASON: Partial<Record<LRUCache.DisposeReason, EvictionReason>> = {
  evict: 'evicted',
  expire: 'expired',
};

/**
 * Holds every user's context.
 *
 * ```ts
 * const store = new ContextStore({ max: 10_000, ttl: 24 * 3600_000,
 *   resources: { llmInstance: { create: (cfg) => makeClient(cfg.provider, cfg.model) } } });
 * app.use(userContext({ store, secret, algorithms: ['HS256'] }));
 * ```
 */
export class ContextStore implements GenerationOwner {
  /** Brand of this class: `instanceof ContextStore` holds across copies of the package. @internal */
  static readonly kind: string = 'ContextStore';
  /** Options a subclass takes on top of these (the unknown-option check reads it). @internal */
  static readonly extraOptions: readonly string[] = [];
  static [Symbol.hasInstance](value: unknown): boolean {
    return isKind(value, this.kind);
  }

  readonly mode: ContextMode;
  readonly outsideScope: 'throw' | 'global';
  readonly ttl: number;
  readonly max: number;
  /** Returns the normalised user id or throws `InvalidUserIdError`. */
  readonly parseUserId: (value: unknown) => string;
  /** Events of this store; see {@link ContextEvents}. */
  readonly events: ContextEvents;

  readonly #cache: LRUCache<string, UserEntry>;
  readonly #defaults: UserConfig;
  readonly #resources: ResourcePolicy;
  readonly #mirror: boolean;
  readonly #onEvict: ContextStoreOptions['onEvict'];
  readonly #loader: Loader | undefined;
  readonly #global: UserEntry;
  readonly #open = new OpenScopes();
  #pendingReason: EvictionReason | undefined;
  /** The time of the access in progress, lent to lru-cache so one access reads the clock once. */
  #now: number | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ContextStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    stamp(this, new.target);
    const settings = resolveStoreOptions(options, new.target);
    const { max, ttl, sweepInterval } = settings;
    this.mode = settings.mode;
    this.outsideScope = settings.outsideScope;
    this.max = max;
    this.ttl = ttl;
    this.parseUserId = createUserIdParser(options.userId);
    this.#defaults = buildDefaults(options.defaults);
    this.#mirror = settings.mirror;
    this.#onEvict = options.onEvict;
    this.events = settings.events;
    this.#loader = settings.persistence && new Loader(settings.persistence, {
      cached: (id) => this.#cache.has(id), closing: () => this.#closing !== undefined, touch: (id) => this.#touch(id).current,
      commit: (id, patch, scope) => this.#commit(id, patch, scope), drop: (id, reason) => this.#deleteWith(id, reason),
      checkBase: (...args) => this.#resources.checkBase(...args),
      install: (id, fields, version, resources, scope) => this.install(id, fields, version, resources, true, scope),
    });
    this.#resources = new ResourcePolicy(options, this.events);
    this.#cache = new LRUCache<string, UserEntry>({
      max,
      ...(ttl > 0 ? { ttl, updateAgeOnGet: true } : {}),
      // Inside #touch the clock has been read already; elsewhere read it now.
      // Exact staleness (no 1 ms cached clock and the timer that resets it).
      ttlResolution: 0,
      perf: { now: () => this.#now ?? Date.now() },
      dispose: (entry, userUuid, reason) => {
        entry.current.retire();
        const why = this.#pendingReason ?? LRU_REASON[reason] ?? 'manual';
        this.#onEvict?.(userUuid, why);
        this.events.emit('evicted', { userUuid, reason: why, inFlight: entry.inFlight });
      },
    });
    this.#global = this.#newEntry(GLOBAL_UUID);
    if (ttl > 0 && sweepInterval > 0) {
      this.#sweep = setInterval(() => this.#cache.purgeStale(), sweepInterval);
      this.#sweep.unref();
    }
  }

  /** Number of user contexts held. */
  get size(): number {
    return this.#cache.size;
  }

  /**
   * Whether helpers called outside any user scope use the process-wide
   * context (`single-user` mode, or `outsideScope: 'global'`) instead of
   * throwing `UserContextMissingError`.
   */
  get globalOutsideScope(): boolean {
    return this.mode === 'single-user' || this.outsideScope === 'global';
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Number of user scopes (requests, `runAsUser` calls) open now. */
  get scopesInFlight(): number {
    return this.#open.size;
  }

  /**
   * Opens a scope for a user: creates the context if needed, refreshes its
   * inactivity timer and leases the current configuration. Close it with
   * `scope.close()`.
   */
  openScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope {
    this.#refuseWhenClosing();
    this.#loader?.requireLoaded(userUuid);
    return this.#openCached(userUuid, claims);
  }

  /** A scope on a user whose context needs no loading (checked by the caller). */
  #openCached(userUuid: string, claims: Readonly<Record<string, unknown>> | undefined): Scope {
    return this.#open.add(new Scope(this, this.#touch(userUuid), claims, this.#open.unlink));
  }

  #refuseWhenClosing(): void {
    if (this.#closing !== undefined) {
      throw new StoreClosedError('The context store is closed; no new user scope can start. Create a new store.');
    }
  }

  /**
   * Opens a scope like {@link openScope}, but may load the context first: a
   * shared store (Redis) returns a promise when the user's context is not in
   * its near-cache, and so does a `persistence.load` for a user not cached.
   * Otherwise the scope itself, so callers await only when they get a
   * promise. The middleware, `runAsUser` and `bindToCurrentUser` open scopes
   * through this method.
   */
  acquireScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope | Promise<Scope> {
    if (this.#loader?.cold(userUuid) === true) return this.#loader.load(userUuid, claims).then(() => this.acquireScope(userUuid, claims));
    // Not cold: cached (or no loader) — openScope's own check would look the user up a second time.
    this.#refuseWhenClosing();
    return this.#openCached(userUuid, claims);
  }

  /**
   * Applies a patch like {@link commit}, but may have to store it first: a
   * shared store returns a promise settled once the write is stored (and
   * rejected, with nothing applied, when it cannot be). The in-memory store
   * commits synchronously (with a `persistence`, once `onCommit` has saved
   * it). The helpers (`configureUser`, `set*`) write through this method.
   */
  write(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation | Promise<Generation> {
    if (userUuid === null || this.#loader === undefined) return this.#commit(userUuid, patch, scope);
    return this.#loader.write(userUuid, patch, scope);
  }

  /**
   * A generation derived from `base` with `fields` applied, never committed:
   * the user's stored context does not change. It shares `base`'s resources
   * whose `dependsOn` fields the patch leaves unchanged; others are built
   * lazily for it. The caller leases it, then retires it, so its resources
   * are released when its last lease ends. Used by profile overrides. @internal
   */
  derive(base: Generation, fields: ReadonlyMap<string, unknown>): Generation {
    const { config, changed } = mergeConfig(base.config, fields, base.config);
    const gen = new Generation(base.userUuid, config, base.version, this);
    this.#resources.carry(base, gen, changed, new Map());
    return gen;
  }

  /**
   * Registers a scope nested in `parent` (built by `create`, given the
   * store's close hook), so `close()` waits for it like any scope. @internal
   */
  openNestedScope<S extends Scope>(parent: Scope, create: (onClose: (scope: Scope) => void) => S): S {
    if (this.#closing !== undefined || !parent.open) {
      throw new StoreClosedError(
        parent.open ? 'The context store is closed; no new user scope can start. Create a new store.'
          : 'The enclosing user scope has ended; a nested scope cannot start in it.',
      );
    }
    return this.#open.add(create(this.#open.unlink));
  }

  /** The process-wide context's current generation (single-user mode, legacy globals). */
  globalGeneration(): Generation {
    return this.#global.current;
  }

  /** The user's current generation; creates the context if needed (not with a loader) and refreshes it. */
  currentGeneration(userUuid: string): Generation {
    this.#loader?.requireLoaded(userUuid);
    return this.#touch(userUuid).current;
  }

  /**
   * Applies a patch as one atomic step and returns the new generation. With a
   * scope, the scope moves to the new generation (its own writes are visible
   * to it) and other scopes keep their snapshot. `userUuid` `null` targets the
   * process-wide context (a user's, with a `persistence`: use {@link write}).
   */
  commit(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation {
    if (userUuid !== null) this.#loader?.refuseSyncCommit();
    return this.#commit(userUuid, patch, scope);
  }

  #commit(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation {
    const { fields, resources } = splitPatch(patch);
    const entry = userUuid === null ? this.#global : this.#touch(userUuid);
    if (resources.size > 0 && scope !== undefined) this.#resources.checkBase(entry.current, fields, resources, scope);
    const created = this.#resources.handOver(entry.current, resources);
    const gen = this.#apply(entry, fields, created);
    return this.#afterApply(entry, gen, fields, created, scope);
  }

  /**
   * Hook for shared stores: installs a configuration committed in a shared
   * backend as the user's generation `version`, built from the store's
   * defaults plus `fields` (the full stored configuration), with the live
   * resources of `resources` (from the local patch, if any). Resources whose
   * `dependsOn` fields did not change are carried over from the current
   * generation. With `current` false the configuration is already outdated
   * here (a newer one is installed): the new generation is created retired,
   * so only `scope` (the writer) sees it, and it is released when that scope
   * ends.
   *
   * @internal
   */
  protected install(
    userUuid: string,
    fields: ReadonlyMap<string, unknown>,
    version: number,
    resources: ReadonlyMap<ResourceName, unknown>,
    current: boolean,
    scope?: Scope,
  ): Generation {
    const entry = this.#touch(userUuid);
    const created = this.#resources.handOver(entry.current, resources);
    const gen = this.#apply(entry, fields, created, { version, base: this.#defaults, current });
    if (!current) {
      if (scope !== undefined && scope.open && scope.userUuid === entry.userUuid) scope.moveTo(gen);
      gen.retire();
      return gen;
    }
    return this.#afterApply(entry, gen, fields, created, scope);
  }

  /** Hook for shared stores: the app's database behind the store, if any (`options.persistence`). @internal */
  protected get persistence(): Persistence | undefined {
    return this.#loader?.persistence;
  }

  /** Hook for shared stores: the user's current local generation, without creating or refreshing it. @internal */
  protected peekGeneration(userUuid: string): Generation | undefined {
    return this.#cache.peek(userUuid)?.current;
  }

  /**
   * Hook for shared stores: the stale-client conflict check of the write
   * path (`ConfigurationConflictError` when a client in `resources`, built
   * for `scope`'s snapshot, depends on a field `current` has changed since
   * and `fields` does not set). @internal
   */
  protected checkResourceBase(
    current: Generation,
    fields: ReadonlyMap<string, unknown>,
    resources: ReadonlyMap<ResourceName, unknown>,
    scope: Scope,
  ): void {
    this.#resources.checkBase(current, fields, resources, scope);
  }

  #afterApply(
    entry: UserEntry,
    gen: Generation,
    fields: ReadonlyMap<string, unknown>,
    created: HandedOver,
    scope: Scope | undefined,
  ): Generation {
    if (scope !== undefined && scope.open && scope.userUuid === entry.userUuid) scope.moveTo(gen);
    if (this.#mirror && entry !== this.#global) {
      for (const r of created.values()) r?.retain();
      this.#apply(this.#global, fields, created);
    }
    return gen;
  }

  /**
   * The live resource of a generation: the one set, or built lazily by the
   * resource's `create` factory from exactly that generation's configuration.
   */
  resource(gen: Generation, name: ResourceName): unknown {
    return this.#resources.build(gen, name);
  }

  /** A read-only view of a generation (resources as they are; nothing is built). */
  view(gen: Generation): UserRuntimeContext {
    const entry = gen.userUuid === GLOBAL_UUID ? this.#global : this.#cache.peek(gen.userUuid);
    return viewOf(gen, entry?.lastAccess ?? Date.now());
  }

  /** The user's context without creating it or refreshing its timer. */
  peek(userUuid: string): UserRuntimeContext | undefined {
    const entry = this.#cache.peek(userUuid);
    return entry === undefined ? undefined : viewOf(entry.current, entry.lastAccess);
  }

  /** Whether the user has a context (without refreshing it). */
  has(userUuid: string): boolean {
    return this.#cache.has(userUuid);
  }

  /** Every held entry, most recently used first, without refreshing them. */
  *entries(): IterableIterator<Readonly<UserEntry> & { remainingTtl: number }> {
    for (const [userUuid, entry] of this.#cache.entries()) {
      yield { ...entry, userUuid, remainingTtl: this.#cache.getRemainingTTL(userUuid) };
    }
  }

  /**
   * One held entry (current generation, requests in flight, remaining TTL)
   * without creating it or refreshing it; `undefined` when absent.
   */
  inspect(userUuid: string): (Readonly<UserEntry> & { remainingTtl: number }) | undefined {
    const entry = this.#cache.peek(userUuid);
    if (entry === undefined) return undefined;
    return { ...entry, userUuid, remainingTtl: this.#cache.getRemainingTTL(userUuid) };
  }

  /**
   * Deletes a user's context wherever it is kept: here, the entry (as
   * {@link evict}); in a shared store, the stored context and every
   * instance's copy; with `persistence.onDelete`, the database's first.
   * Resolves whether a context was there. The admin API's
   * `DELETE /admin/contexts/:uuid` calls it.
   */
  deleteContext(userUuid: string): boolean | Promise<boolean> {
    return this.#loader === undefined ? this.evict(userUuid, 'manual') : this.#loader.delete(userUuid);
  }

  /**
   * Removes a user's context. Its resources are disposed once no request
   * holds them. Returns whether a context was there.
   */
  evict(userUuid: string, reason: EvictionReason = 'manual'): boolean {
    return this.#deleteWith(userUuid, reason);
  }

  /**
   * Evicts every context idle for longer than `maxAgeMs`; returns how many.
   * Expired entries are purged as well.
   */
  cleanupInactive(maxAgeMs: number): number {
    if (!Number.isFinite(maxAgeMs) || maxAgeMs < 0) throw new TypeError('maxAge must be a number >= 0');
    this.#cache.purgeStale();
    const cutoff = Date.now() - maxAgeMs;
    const idle: string[] = [];
    for (const [userUuid, entry] of this.#cache.entries()) {
      if (entry.lastAccess < cutoff && entry.inFlight === 0) idle.push(userUuid);
    }
    for (const userUuid of idle) this.#deleteWith(userUuid, 'inactive');
    return idle.length;
  }

  /** Sweeps TTL-expired contexts now (the timer does it every `sweepInterval`). */
  purgeStale(): boolean {
    return this.#cache.purgeStale();
  }

  /** Disposes a released resource. @internal */
  dispose(name: ResourceName, value: unknown, userUuid: string): void {
    this.#resources.dispose(name, value, userUuid);
  }

  /**
   * Stops new scopes, waits for the open ones to end (at most `timeout` ms),
   * then disposes every resource exactly once. Calling it again returns the
   * same promise.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.timeout ?? 10_000);
    return this.#closing;
  }

  async #close(timeout: number): Promise<void> {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    await this.#open.drain(timeout);
    this.#loader?.persistence.close();
    this.#open.closeAll();
    this.#pendingReason = 'closed';
    this.#cache.clear();
    this.#pendingReason = undefined;
    this.#global.current.retire();
    await this.#resources.settled();
  }

  #newEntry(userUuid: string): UserEntry {
    return {
      userUuid,
      current: new Generation(userUuid, this.#defaults, 0, this),
      lastAccess: Date.now(),
      inFlight: 0,
    };
  }

  #touch(userUuid: string): UserEntry {
    // One clock read per access: lru-cache's TTL bookkeeping and lastAccess share it.
    const now = Date.now();
    this.#now = now;
    try {
      let entry = this.#cache.get(userUuid);
      if (entry === undefined) {
        if (this.#closing !== undefined) {
          throw new StoreClosedError('The context store is closed; it cannot create user contexts any more.');
        }
        entry = this.#newEntry(userUuid);
        this.#cache.set(userUuid, entry);
        this.events.emit('contextLoaded', { userUuid, source: 'created' });
      }
      entry.lastAccess = now;
      return entry;
    } finally {
      this.#now = undefined;
    }
  }

  #apply(
    entry: UserEntry,
    fields: ReadonlyMap<string, unknown>,
    created: HandedOver,
    shared?: { version: number; base: UserConfig; current: boolean },
  ): Generation {
    const old = entry.current;
    const { config, changed } = mergeConfig(shared?.base ?? old.config, fields, old.config);
    const version = shared?.version ?? old.version + 1;
    const gen = new Generation(entry.userUuid, config, version, this);
    this.#resources.carry(old, gen, changed, created);
    if (shared !== undefined && !shared.current) return gen;
    entry.current = gen;
    if (entry !== this.#global && this.events.listening) this.#reportReplaced(entry, old, gen);
    old.retire();
    return gen;
  }

  /** Emits `evicted` / `'replaced'` when `gen` dropped live resources `old` held. */
  #reportReplaced(entry: UserEntry, old: Generation, gen: Generation): void {
    let dropped: ResourceName[] | undefined;
    for (const [name, resource] of old.resources) {
      if (gen.resources.get(name) !== resource && !resource.disposed) (dropped ??= []).push(name);
    }
    if (dropped !== undefined) {
      this.events.emit('evicted', { userUuid: entry.userUuid, reason: 'replaced', inFlight: entry.inFlight, resources: dropped });
    }
  }

  #deleteWith(userUuid: string, reason: EvictionReason): boolean {
    this.#pendingReason = reason;
    try {
      return this.#cache.delete(userUuid);
    } finally {
      this.#pendingReason = undefined;
    }
  }
}
