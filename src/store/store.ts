/**
 * The in-memory context store: one entry per user in an lru-cache whose
 * sliding TTL evicts inactive users, with atomic commits and resource
 * lifetime tied to the configuration that built each resource.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import {
  BUILTIN_DEFAULTS,
  RESOURCE_NAMES,
  sameValue,
  splitPatch,
  type ConfigField,
  type ContextPatch,
  type ResourceName,
  type UserConfig,
  type UserContextFields,
  type UserRuntimeContext,
} from '../context/values.js';
import { StoreClosedError } from '../errors.js';
import { assertResourceBase } from './resource-conflict.js';
import { ContextEvents } from './events.js';
import { Generation, Resource, type GenerationOwner } from './generation.js';
import { Scope } from './scope.js';
import { createUserIdParser, type UserIdPolicy } from '../auth/user-id.js';
import { WARNING_TYPE, warnOnce } from '../warn.js';

/** How helpers behave outside any user scope. */
export type ContextMode = 'single-user' | 'multi-user';

/** Why an entry left the store. */
export type EvictionReason = 'expired' | 'evicted' | 'manual' | 'inactive' | 'closed';

/** How a live resource is built and disposed. */
export interface ResourceSpec<T = unknown> {
  /**
   * Configuration fields the resource is built from. Committing a change to
   * any of them drops the resource from the new configuration (and disposes
   * it once no request uses the old one).
   *
   * @default llmInstance: provider, model, awsRegion, azureDeploymentDetails,
   * friendliDetails, modelProviderInProfile; mcpClient: mcpServerName,
   * mcpServerId, serverConfigs
   */
  dependsOn?: readonly ConfigField[];
  /**
   * Builds the resource lazily from the configuration, on the first
   * `getUserLlmInstance()` / `getUserMcpClient()` of that configuration.
   * May return a Promise; the Promise itself is cached (single flight).
   *
   * @default undefined (the getter returns `null` until a value is set)
   */
  create?: (config: UserConfig, userUuid: string) => T;
  /**
   * Disposes the resource. `null` means the store never disposes it (use it
   * for clients shared with something else).
   *
   * @default calls `value[Symbol.asyncDispose]()`, `value.close()` or
   * `value.dispose()`, whichever exists first
   */
  dispose?: ((value: Awaited<T>, userUuid: string) => unknown) | null;
}

/** Options of {@link ContextStore}. */
export interface ContextStoreOptions {
  /**
   * Most user contexts kept; the least recently used goes first.
   * @default 10_000
   */
  max?: number;
  /**
   * Sliding inactivity time-to-live in milliseconds: a context not used for
   * this long is evicted and its resources disposed. `0` disables it.
   * @default 86_400_000 (24 h)
   */
  ttl?: number;
  /**
   * How often (ms) expired contexts are swept, so their resources are
   * disposed even if nobody touches them again. `0` disables the sweep.
   * @default 60_000
   */
  sweepInterval?: number;
  /**
   * `multi-user`: a helper called outside any user scope throws
   * `UserContextMissingError`. `single-user`: it uses one process-wide
   * context (the legacy `APP_CONFIG` behaviour).
   * @default process.env.KOA_USER_CONTEXT_MODE, else 'multi-user'
   */
  mode?: ContextMode;
  /**
   * In `multi-user` mode, `'global'` lets helpers outside a scope fall back
   * to the process-wide context instead of throwing.
   * @default 'throw'
   */
  outsideScope?: 'throw' | 'global';
  /**
   * Shape of a valid user id.
   * @default UUIDs of any version, normalised to lower case
   */
  userId?: UserIdPolicy;
  /**
   * Initial values of the fields of a new context (app fields included).
   * Copied and frozen: users never share mutable state.
   * @default all built-in fields null, serverConfigs {}
   */
  defaults?: Partial<UserContextFields>;
  /**
   * How `llmInstance` and `mcpClient` are built and disposed.
   * @default {} (no factories, default dispose)
   */
  resources?: { llmInstance?: ResourceSpec; mcpClient?: ResourceSpec };
  /**
   * Also copy every per-user write into the process-wide (legacy
   * `APP_CONFIG`) context. This brings back last-writer-wins for code that
   * reads the globals; it exists for migrations only and warns once.
   * @default false
   */
  mirrorToLegacyGlobals?: boolean;
  /**
   * Called when a resource's dispose throws or rejects.
   * @default emits a process warning with code `KUC_DISPOSE_FAILED`
   */
  onDisposeError?: (error: unknown, info: { resource: ResourceName; userUuid: string }) => void;
  /**
   * Called when a context leaves the store.
   * @default undefined
   */
  onEvict?: (userUuid: string, reason: EvictionReason) => void;
  /**
   * Observer of the store (and of the middleware and helpers using it):
   * context loads, evictions, token cache hits/misses, rejected tokens,
   * resource disposals, missing-context errors. Pass one emitter to several
   * stores to watch them together. Read it back as `store.events`.
   * @default a new `ContextEvents` with no listeners
   */
  events?: ContextEvents;
}

/** One user's slot in the store. */
export interface UserEntry {
  readonly userUuid: string;
  /** The current (newest committed) generation. */
  current: Generation;
  /** `Date.now()` of the last request or explicit access. */
  lastAccess: number;
  /** Scopes open on this entry. */
  inFlight: number;
}

const DEFAULT_DEPENDS: Record<ResourceName, readonly ConfigField[]> = {
  llmInstance: ['provider', 'model', 'awsRegion', 'azureDeploymentDetails', 'friendliDetails', 'modelProviderInProfile'],
  mcpClient: ['mcpServerName', 'mcpServerId', 'serverConfigs'],
};

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
  readonly #specs: Record<ResourceName, ResourceSpec>;
  readonly #mirror: boolean;
  readonly #onDisposeError: NonNullable<ContextStoreOptions['onDisposeError']>;
  readonly #onEvict: ContextStoreOptions['onEvict'];
  readonly #global: UserEntry;
  /** Open scopes, as an intrusive doubly linked list (no hashing on the request path). */
  #openScopes: Scope | undefined;
  #openCount = 0;
  readonly #pending = new Set<Promise<void>>();
  #pendingReason: EvictionReason | undefined;
  /** The time of the access in progress, lent to lru-cache so one access reads the clock once. */
  #now: number | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #closeScope = (scope: Scope): void => {
    const { prevOpen, nextOpen } = scope;
    if (prevOpen !== undefined) prevOpen.nextOpen = nextOpen;
    else this.#openScopes = nextOpen;
    if (nextOpen !== undefined) nextOpen.prevOpen = prevOpen;
    scope.prevOpen = scope.nextOpen = undefined;
    if (--this.#openCount === 0) this.#drained?.();
  };

  constructor(options: ContextStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    const {
      max = 10_000,
      ttl = 86_400_000,
      sweepInterval = 60_000,
      mode = modeFromEnv(),
      outsideScope = 'throw',
      mirrorToLegacyGlobals = false,
    } = options;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('options.max must be a positive integer');
    if (!Number.isFinite(ttl) || ttl < 0) throw new TypeError('options.ttl must be a number of milliseconds >= 0');
    if (!Number.isFinite(sweepInterval) || sweepInterval < 0) {
      throw new TypeError('options.sweepInterval must be a number of milliseconds >= 0');
    }
    if (mode !== 'single-user' && mode !== 'multi-user') {
      throw new TypeError(`options.mode must be 'single-user' or 'multi-user', got ${String(mode)}`);
    }
    if (outsideScope !== 'throw' && outsideScope !== 'global') {
      throw new TypeError(`options.outsideScope must be 'throw' or 'global', got ${String(outsideScope)}`);
    }
    this.mode = mode;
    this.outsideScope = outsideScope;
    this.max = max;
    this.ttl = ttl;
    this.parseUserId = createUserIdParser(options.userId);
    this.#defaults = buildDefaults(options.defaults);
    this.#specs = {
      llmInstance: checkSpec('llmInstance', options.resources?.llmInstance),
      mcpClient: checkSpec('mcpClient', options.resources?.mcpClient),
    };
    this.#mirror = mirrorToLegacyGlobals === true;
    this.#onDisposeError = options.onDisposeError ?? defaultDisposeError;
    this.#onEvict = options.onEvict;
    if (options.events !== undefined && !(options.events instanceof ContextEvents)) {
      throw new TypeError('options.events must be a ContextEvents instance');
    }
    this.events = options.events ?? new ContextEvents();
    if (this.#mirror) {
      warnOnce(
        'KUC_LEGACY_MIRROR',
        'mirrorToLegacyGlobals is on: every per-user write is also copied into the process-wide APP_CONFIG, ' +
          'so code that still reads the globals sees the last writer of any user. Migrate those call sites to ' +
          'getUserProvider()/getUserModel()… and turn the option off.',
      );
    }
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
    return this.#openCount;
  }

  /**
   * Opens a scope for a user: creates the context if needed, refreshes its
   * inactivity timer and leases the current configuration. Close it with
   * `scope.close()`.
   */
  openScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope {
    if (this.#closing !== undefined) {
      throw new StoreClosedError('The context store is closed; no new user scope can start. Create a new store.');
    }
    return this.#register(new Scope(this, this.#touch(userUuid), claims, this.#closeScope));
  }

  /** Links an open scope into the list `close()` waits for. */
  #register<S extends Scope>(scope: S): S {
    const head = this.#openScopes;
    scope.nextOpen = head;
    if (head !== undefined) head.prevOpen = scope;
    this.#openScopes = scope;
    this.#openCount++;
    return scope;
  }

  /**
   * Opens a scope like {@link openScope}, but may load the context first: a
   * shared store (Redis) returns a promise when the user's context is not in
   * its near-cache. The in-memory store always returns the scope itself, so
   * callers await only when they get a promise. The middleware, `runAsUser`
   * and `bindToCurrentUser` open scopes through this method.
   */
  acquireScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope | Promise<Scope> {
    return this.openScope(userUuid, claims);
  }

  /**
   * Applies a patch like {@link commit}, but may have to store it first: a
   * shared store returns a promise settled once the write is stored (and
   * rejected, with nothing applied, when it cannot be). The in-memory store
   * commits synchronously. The helpers (`configureUser`, `set*`) write through
   * this method.
   */
  write(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation | Promise<Generation> {
    return this.commit(userUuid, patch, scope);
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
    this.#carry(base, gen, changed, new Map());
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
    return this.#register(create(this.#closeScope));
  }

  /** The process-wide context's current generation (single-user mode, legacy globals). */
  globalGeneration(): Generation {
    return this.#global.current;
  }

  /** The user's current generation; creates the context if needed and refreshes it. */
  currentGeneration(userUuid: string): Generation {
    return this.#touch(userUuid).current;
  }

  /**
   * Applies a patch as one atomic step and returns the new generation. With a
   * scope, the scope moves to the new generation (its own writes are visible
   * to it) and other scopes keep their snapshot. `userUuid` `null` targets the
   * process-wide context.
   */
  commit(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation {
    const { fields, resources } = splitPatch(patch);
    const entry = userUuid === null ? this.#global : this.#touch(userUuid);
    if (resources.size > 0 && scope !== undefined) this.#checkResourceBase(entry, fields, resources, scope);
    const created = this.#resourcesOf(entry, resources);
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
    const created = this.#resourcesOf(entry, resources);
    const gen = this.#apply(entry, fields, created, { version, base: this.#defaults, current });
    if (!current) {
      if (scope !== undefined && scope.open && scope.userUuid === entry.userUuid) scope.moveTo(gen);
      gen.retire();
      return gen;
    }
    return this.#afterApply(entry, gen, fields, created, scope);
  }

  /** Hook for shared stores: the user's current local generation, without creating or refreshing it. @internal */
  protected peekGeneration(userUuid: string): Generation | undefined {
    return this.#cache.peek(userUuid)?.current;
  }

  /**
   * Hook for shared stores: throws `ConfigurationConflictError` when a client
   * in `resources`, built for `base`, depends on a field that differs in
   * `current` and that `fields` does not set. @internal
   */
  protected checkResourceBase(
    base: UserConfig,
    current: UserConfig,
    fields: ReadonlyMap<string, unknown>,
    resources: ReadonlyMap<ResourceName, unknown>,
  ): void {
    assertResourceBase(base, current, fields, resources, (name) => this.#specs[name].dependsOn ?? DEFAULT_DEPENDS[name]);
  }

  /**
   * The resources a patch hands over: `null` drops one; handing back the
   * client the context already holds keeps it (one owner, disposed once).
   */
  #resourcesOf(entry: UserEntry, resources: ReadonlyMap<ResourceName, unknown>): Map<ResourceName, Resource | null> {
    const created = new Map<ResourceName, Resource | null>();
    for (const [name, value] of resources) {
      const held = entry.current.resources.get(name);
      const same = held !== undefined && !held.disposed && held.value === value;
      created.set(name, value === null ? null : same ? held.retain() : new Resource(name, value));
    }
    return created;
  }

  #afterApply(
    entry: UserEntry,
    gen: Generation,
    fields: ReadonlyMap<string, unknown>,
    created: Map<ResourceName, Resource | null>,
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
    const existing = gen.resources.get(name);
    if (existing !== undefined) return existing.value;
    const create = this.#specs[name].create;
    if (create === undefined) return null;
    const value = create(gen.config, gen.userUuid);
    if (value == null) return null;
    if (isThenable(value)) {
      // A rejected build is not cached: the next call tries again.
      value.then(undefined, () => {
        if (gen.resources.get(name)?.value === value) gen.resources.delete(name);
      });
    }
    gen.attach(new Resource(name, value));
    return value;
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
   * Removes a user's context. Its resources are disposed once no request
   * holds them. Returns whether a context was there.
   */
  evict(userUuid: string, reason: EvictionReason = 'manual'): boolean {
    return this.#deleteWith(userUuid, reason);
  }

  /**
   * Deletes a user's context wherever it is kept: here, the entry (as
   * {@link evict}); in a shared store, the stored context and every
   * instance's copy. Resolves whether a context was there. The admin API's
   * `DELETE /admin/contexts/:uuid` calls it.
   */
  deleteContext(userUuid: string): boolean | Promise<boolean> {
    return this.evict(userUuid, 'manual');
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
    const disposeFn = this.#specs[name].dispose;
    if (disposeFn === null) return;
    const run = async (): Promise<void> => {
      const resolved: unknown = await value;
      if (disposeFn !== undefined) await disposeFn(resolved, userUuid);
      else await defaultDispose(resolved);
    };
    const done = run().then(
      () => {
        this.#pending.delete(done);
        this.events.emit('resourceDisposed', { userUuid, resource: name, ok: true });
      },
      (error: unknown) => {
        this.#pending.delete(done);
        this.events.emit('resourceDisposed', { userUuid, resource: name, ok: false });
        this.#onDisposeError(error, { resource: name, userUuid });
      },
    );
    this.#pending.add(done);
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
    if (this.#openCount > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
        timer = setTimeout(resolve, timeout);
        timer.unref();
      });
      clearTimeout(timer);
    }
    // Scopes still open after the timeout lose their lease now.
    const stillOpen: Scope[] = [];
    for (let scope = this.#openScopes; scope !== undefined; scope = scope.nextOpen) stillOpen.push(scope);
    // Oldest first (the list is newest first).
    for (const scope of stillOpen.reverse()) scope.close();
    this.#pendingReason = 'closed';
    this.#cache.clear();
    this.#pendingReason = undefined;
    this.#global.current.retire();
    while (this.#pending.size > 0) await Promise.all(this.#pending);
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
    created: Map<ResourceName, Resource | null>,
    shared?: { version: number; base: UserConfig; current: boolean },
  ): Generation {
    const old = entry.current;
    const { config, changed } = mergeConfig(shared?.base ?? old.config, fields, old.config);
    const version = shared?.version ?? old.version + 1;
    const gen = new Generation(entry.userUuid, config, version, this);
    this.#carry(old, gen, changed, created);
    if (shared !== undefined && !shared.current) return gen;
    entry.current = gen;
    if (entry !== this.#global && this.events.listening) this.#reportReplaced(entry, old, gen);
    old.retire();
    return gen;
  }

  /** The stale-client conflict check (see resource-conflict.ts) against the entry's current configuration. */
  #checkResourceBase(
    entry: UserEntry,
    fields: ReadonlyMap<string, unknown>,
    resources: ReadonlyMap<ResourceName, unknown>,
    scope: Scope,
  ): void {
    if (!scope.open || scope.userUuid !== entry.userUuid) return;
    this.checkResourceBase(scope.gen.config, entry.current.config, fields, resources);
  }

  /** Shares with `gen` the resources of `old` whose `dependsOn` fields did not change. */
  #carry(old: Generation, gen: Generation, changed: Set<string>, created: Map<ResourceName, Resource | null>): void {
    for (const name of RESOURCE_NAMES) {
      const set = created.get(name);
      if (set !== undefined) {
        if (set !== null) gen.resources.set(name, set);
        continue;
      }
      const kept = old.resources.get(name);
      const deps = this.#specs[name].dependsOn ?? DEFAULT_DEPENDS[name];
      if (kept !== undefined && !kept.disposed && !deps.some((field) => changed.has(field))) {
        gen.resources.set(name, kept.retain());
      }
    }
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

function modeFromEnv(): ContextMode {
  const value = process.env['KOA_USER_CONTEXT_MODE'];
  if (value === undefined || value === '') return 'multi-user';
  if (value === 'single-user' || value === 'multi-user') return value;
  throw new TypeError(`KOA_USER_CONTEXT_MODE must be 'single-user' or 'multi-user', got '${value}'`);
}

function buildDefaults(defaults: Partial<UserContextFields> | undefined): UserConfig {
  if (defaults === undefined) return BUILTIN_DEFAULTS;
  if (defaults === null || typeof defaults !== 'object') throw new TypeError('options.defaults must be an object');
  const { fields, resources } = splitPatch(defaults);
  if (resources.size > 0) {
    throw new TypeError('options.defaults holds configuration fields only; use options.resources for live clients');
  }
  const config: Record<string, unknown> = { ...BUILTIN_DEFAULTS };
  for (const [key, value] of fields) config[key] = value;
  return Object.freeze(config) as UserConfig;
}

function checkSpec(name: ResourceName, spec: ResourceSpec | undefined): ResourceSpec {
  if (spec === undefined) return {};
  if (spec === null || typeof spec !== 'object') throw new TypeError(`options.resources.${name} must be an object`);
  if (spec.create !== undefined && typeof spec.create !== 'function') {
    throw new TypeError(`options.resources.${name}.create must be a function (config, userUuid) => client`);
  }
  if (spec.dispose !== undefined && spec.dispose !== null && typeof spec.dispose !== 'function') {
    throw new TypeError(`options.resources.${name}.dispose must be a function or null`);
  }
  if (spec.dependsOn !== undefined && !Array.isArray(spec.dependsOn)) {
    throw new TypeError(`options.resources.${name}.dependsOn must be an array of field names`);
  }
  return spec;
}

async function defaultDispose(value: unknown): Promise<void> {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
  const v = value as Record<string | symbol, unknown>;
  for (const key of [Symbol.asyncDispose, 'close', 'dispose', Symbol.dispose] as const) {
    const fn = v[key];
    if (typeof fn === 'function') {
      await (fn as () => unknown).call(value);
      return;
    }
  }
}

function defaultDisposeError(error: unknown, info: { resource: ResourceName; userUuid: string }): void {
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(
    `Disposing ${info.resource} of user ${info.userUuid} failed: ${message}`,
    WARNING_TYPE,
    'KUC_DISPOSE_FAILED',
  );
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/**
 * `base` with `fields` applied, frozen, and the fields whose value differs
 * from `before` (including fields `before` has and the result lacks).
 */
function mergeConfig(
  base: UserConfig,
  fields: ReadonlyMap<string, unknown>,
  before: UserConfig,
): { config: UserConfig; changed: Set<string> } {
  const config: Record<string, unknown> = { ...base };
  for (const [key, value] of fields) config[key] = value;
  const previous = before as unknown as Record<string, unknown>;
  const changed = new Set<string>();
  for (const key of Object.keys(config)) if (!sameValue(previous[key], config[key])) changed.add(key);
  for (const key of Object.keys(previous)) if (!(key in config)) changed.add(key);
  return { config: Object.freeze(config) as UserConfig, changed };
}

function viewOf(gen: Generation, lastAccess: number): UserRuntimeContext {
  return Object.freeze({
    ...gen.config,
    llmInstance: (gen.resources.get('llmInstance')?.value ?? null) as UserRuntimeContext['llmInstance'],
    mcpClient: (gen.resources.get('mcpClient')?.value ?? null) as UserRuntimeContext['mcpClient'],
    userUuid: gen.userUuid,
    lastAccess: new Date(lastAccess),
    version: gen.version,
  });
}
