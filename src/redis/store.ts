/**
 * A context store shared by several instances through Redis (ioredis):
 * standalone, Sentinel or Cluster.
 *
 * Redis holds each user's serialisable configuration (fields, last access,
 * version); each process keeps a near-cache of those configurations (the
 * in-memory store it extends) with its own live resources, rebuilt from the
 * shared configuration by `resources.*.create` and disposed here when the
 * configuration changes or the local entry goes. Writes go through a Lua
 * script (atomic; fenced on Redis's clock; version bump; PUBLISH of an
 * invalidation); every instance subscribes to the invalidations and drops
 * the user from its near-cache, so the next request of that user reads Redis
 * again. The consistency promise is in docs/scaling-out-redis.md.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { splitPatch } from '../context/values.js';
import type { ContextPatch, ResourceName } from '../context/types.js';
import {
  ConfigurationConflictError, ContextLoadError, ContextNotLoadedError, ContextStoreUnavailableError, StoreClosedError,
} from '../errors.js';
import type { Generation } from '../store/generation.js';
import type { Scope } from '../store/scope.js';
import { ContextStore } from '../store/store.js';
import { warnOnce } from '../warn.js';
import { FieldCodec, toEncryptionKey } from './codec.js';
import { RedisClock, localNow } from './fence.js';
import { ScriptRunner, VersionMoved, toUnavailable } from './runner.js';
import { SharedPersistence, type Claims } from './persisted.js';
import { DEFAULT_SECRET_FIELDS, REDIS_OPTION_NAMES, checkOptions, type RedisConsistency, type RedisContextStoreOptions } from './options.js';
import { COMMIT, DELETE, LOAD, TOUCH } from './scripts.js';
import type { RedisReadiness, RedisStoreStats } from './stats.js';
import { Subscription, quit } from './subscription.js';
import { checkClientOptions, isCluster, openClient, type RedisClient } from './topology.js';

export type { RedisConsistency, RedisContextStoreOptions } from './options.js';
export type { RedisReadiness, RedisStoreStats } from './stats.js';

interface Fresh {
  /** Logical time at which the load that validated the entry was sent. */
  tick: number;
  /** Subscription epoch at that time: a new subscription invalidates everything. */
  epoch: number;
  /** Local clock when that load was sent: the entry is revalidated `revalidateInterval` later. */
  checkedAt: number;
  /** When the Redis TTL was last refreshed by this instance. */
  touchedAt: number;
}

const NO_RESOURCES: ReadonlyMap<ResourceName, unknown> = new Map();
const NO_FIELDS: ReadonlyMap<string, unknown> = new Map();
const CONFLICT_ATTEMPTS = 3;
/** Attempts of a saved write (`persistence.onCommit`) whose version another instance moved meanwhile. */
const SAVED_ATTEMPTS = 5;


/**
 * A {@link ContextStore} whose configurations live in Redis, shared by every
 * instance using the same `keyPrefix`.
 *
 * ```ts
 * const store = new RedisContextStore({ redis: process.env.REDIS_URL, encryptionKey,
 *   resources: { llmInstance: { create: (cfg) => makeClient(cfg.provider, cfg.model) } } });
 * await store.whenReady();
 * app.use(userContext({ store, secret, algorithms: ['HS256'] }));
 * ```
 *
 * Consistency: a configuration acknowledged on one instance is seen by every
 * request that starts on any instance once the invalidation has arrived
 * (about a millisecond on a LAN); a write answered with an error is never
 * applied afterwards. Outages, restarts and failovers: see `consistency` and
 * docs/scaling-out-redis.md.
 */
export class RedisContextStore extends ContextStore {
  /** @internal */
  static override readonly kind: string = 'RedisContextStore';
  /** Options this store takes on top of the in-memory store's (the unknown-option check reads it). @internal */
  static override readonly extraOptions: readonly string[] = REDIS_OPTION_NAMES;

  /** Prefix of the keys and channel. */
  readonly keyPrefix: string;
  /** Identifies this instance in invalidation messages. */
  readonly instanceId: string = randomUUID();
  /** See {@link RedisConsistency}. */
  readonly consistency: RedisConsistency;

  readonly #client: RedisClient;
  readonly #ownsClient: boolean;
  readonly #subscription: Subscription;
  readonly #clock = new RedisClock();
  readonly #codec: FieldCodec;
  readonly #channel: string;
  readonly #redisTtl: number;
  readonly #refreshInterval: number;
  readonly #revalidateInterval: number;
  readonly #runner: ScriptRunner;
  readonly #saved: SharedPersistence | undefined;
  readonly #fresh: LRUCache<string, Fresh>;
  /**
   * Users whose local generation an invalidation reported outdated, with the
   * logical time it arrived: never served from the near-cache when Redis
   * fails (503 instead); cleared by a Redis reply sent after that time.
   */
  readonly #outdated: LRUCache<string, number>;
  /** Logical time of the Redis reply each local generation came from. */
  readonly #sources = new WeakMap<Generation, number>();
  readonly #stats: RedisStoreStats = {
    loads: 0, revalidations: 0, commits: 0, fenced: 0, conflicts: 0, deletes: 0, touches: 0, invalidations: 0, servedUnconfirmed: 0,
  };
  #tick = 0;
  #shutdown: Promise<void> | undefined;

  constructor(options: RedisContextStoreOptions) {
    super(checkOptions(options));
    const { redis, keyPrefix = 'koa-user-context:', commandTimeout = 2_000 } = options;
    const secretFields = options.secretFields ?? DEFAULT_SECRET_FIELDS;
    const refreshInterval = options.refreshInterval ?? (this.ttl > 0 ? Math.min(60_000, Math.floor(this.ttl / 4)) : 0);
    if (this.ttl > 0 && (!Number.isFinite(refreshInterval) || refreshInterval <= 0 || refreshInterval >= this.ttl)) {
      throw new TypeError('options.refreshInterval must be a number of milliseconds > 0 and < options.ttl');
    }
    this.keyPrefix = keyPrefix;
    this.consistency = options.consistency ?? 'available';
    this.#channel = `${keyPrefix}invalidate`;
    this.#refreshInterval = refreshInterval;
    this.#revalidateInterval = options.revalidateInterval ?? 5_000;
    this.#redisTtl = this.ttl > 0 ? this.ttl + refreshInterval : 0;
    const key = options.encryptionKey === undefined ? undefined : toEncryptionKey(options.encryptionKey);
    this.#codec = new FieldCodec(key, new Set(secretFields), keyPrefix);

    if (typeof redis === 'string') {
      this.#client = openClient(redis, options.redisOptions, commandTimeout, `koa-user-context:${this.instanceId}`);
      this.#client.on('error', (error: Error) => {
        warnOnce('KUC_REDIS_ERROR', `Redis connection error (the client reconnects by itself): ${error.message}`);
      });
      this.#ownsClient = true;
    } else {
      this.#client = redis;
      this.#ownsClient = false;
      checkClientOptions(redis);
    }
    // The server behind a connection may change when it closes (a restart, a
    // failover): forget its clock until it is measured again.
    const forget = (): void => this.#clock.forget();
    this.#client.on('close', forget);
    if (isCluster(this.#client)) {
      this.#client.on('+node', forget);
      this.#client.on('-node', forget);
    }
    this.#subscription = new Subscription({
      client: this.#client,
      channel: this.#channel,
      instanceId: this.instanceId,
      heartbeatInterval: options.heartbeatInterval ?? 1_000,
      clock: this.#clock,
      onMessage: (message) => this.#invalidate(message),
    });
    this.#client.on('ready', () => this.#subscription.kick());
    this.#runner = new ScriptRunner(this.#client, this.#clock, commandTimeout);

    this.#fresh = new LRUCache<string, Fresh>({
      max: this.max,
      // Deleting an entry while it loads (an invalidation) must not fail the
      // requests waiting for it: they get the result, which is not cached.
      ignoreFetchAbort: true,
      fetchMethod: (userUuid, _stale, { context }) => this.#load(userUuid, context as Claims),
    });
    this.#outdated = new LRUCache<string, number>({ max: this.max });
    this.#saved = this.persistence && new SharedPersistence(this.persistence, {
      commit: (userUuid, fields, expected) => this.#commitScript(userUuid, this.#codec.encode(userUuid, fields), expected),
      read: (userUuid) => this.#loadScript(userUuid), deleteShared: (userUuid) => this.#deleteShared(userUuid),
      dropLocal: (userUuid) => this.#dropLocal(userUuid),
    });
  }

  /** Counters of Redis reads and writes done by this store. */
  get stats(): Readonly<RedisStoreStats> {
    return { ...this.#stats, fenced: this.#runner.fenced };
  }

  /** Whether requests can be served from Redis now (commands connected, subscription confirmed, clock measured). */
  get ready(): boolean {
    return !this.closed && this.#client.status === 'ready' && this.#subscription.active && this.#clock.known;
  }

  /** The readiness check: what `GET /ready` reports. */
  readiness(): RedisReadiness {
    return {
      ready: this.ready,
      redis: this.#client.status,
      invalidations: this.#subscription.state,
      subscriptionLosses: this.#subscription.losses,
      clock: this.#clock.known ? 'measured' : 'unknown',
      deployment: isCluster(this.#client) ? 'cluster' : 'standalone',
      consistency: this.consistency,
      closed: this.closed,
    };
  }

  /** Resolves `true` once {@link ready}, or `false` after `timeout` ms. */
  async whenReady(timeout = 5_000): Promise<boolean> {
    const until = Date.now() + timeout;
    while (!this.ready) {
      if (this.closed || Date.now() >= until) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  /** The Redis key of a user's context. */
  keyOf(userUuid: string): string {
    return `${this.keyPrefix}ctx:${userUuid}`;
  }

  /**
   * Opens a scope on the user's shared configuration: synchronously when the
   * near-cache holds it, no invalidation arrived since it was read and it was
   * confirmed less than `revalidateInterval` ago; otherwise after one Redis
   * read (shared by every concurrent request of the user). Redis unreachable:
   * see `consistency`; a context not cached here rejects with
   * `ContextStoreUnavailableError` (503).
   */
  override acquireScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope | Promise<Scope> {
    if (this.closed) return super.openScope(userUuid, claims);
    const fresh = this.#freshEntry(userUuid, true);
    if (fresh !== undefined) {
      this.#maybeTouch(userUuid, fresh);
      return super.openScope(userUuid, claims);
    }
    return this.#loadAndOpen(userUuid, claims);
  }

  /**
   * Synchronous open: only for a user whose context is current in the
   * near-cache; otherwise throws `ContextNotLoadedError` (use `acquireScope`).
   */
  override openScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope {
    if (!this.closed && this.#freshEntry(userUuid, false) === undefined) throw notLoaded(userUuid);
    return super.openScope(userUuid, claims);
  }

  /** The user's current generation, if it is current in the near-cache; else throws `ContextNotLoadedError`. */
  override currentGeneration(userUuid: string): Generation {
    if (this.#freshEntry(userUuid, false) === undefined) throw notLoaded(userUuid);
    return super.currentGeneration(userUuid);
  }

  /**
   * Synchronous commit: only for the process-wide context (legacy globals,
   * which are never shared). A user's configuration is written with
   * {@link write} (what `configureUser()` and the setters use).
   */
  override commit(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation {
    if (userUuid === null) return super.commit(null, patch, scope);
    throw new ContextNotLoadedError(
      'RedisContextStore.commit() cannot store a user configuration synchronously; use configureUser() / the setters, ' +
        'or await store.write(userUuid, patch).',
    );
  }

  /**
   * Stores the patch's fields in Redis as one atomic step, then installs the
   * resulting configuration here (the writer's scope moves to it). Live
   * resources in the patch (`llmInstance`, `mcpClient`) stay in this process;
   * one built for a configuration another request has changed since is
   * refused with `ConfigurationConflictError`, as in the in-memory store.
   * Rejects with `ContextStoreUnavailableError` when Redis cannot be reached
   * in time: then the write is not applied, and never will be (it is fenced);
   * a reply lost on the way back is the one case where it was applied before
   * the error was reported.
   */
  override write(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation | Promise<Generation> {
    if (userUuid === null) return super.write(null, patch, scope);
    if (this.closed) throw new StoreClosedError('The context store is closed; it cannot store configurations any more.');
    const { fields, resources } = splitPatch(patch);
    if (fields.size === 0) return this.#writeLocal(userUuid, resources, scope);
    const persistence = this.#saved?.persistence;
    if (persistence?.saves === true) return persistence.serialize(userUuid, () => this.#writeShared(userUuid, fields, resources, scope));
    // A user not in Redis is loaded (from the app's loader) before a write merges into it.
    if (persistence?.loads === true && this.#freshEntry(userUuid, false) === undefined) {
      return this.#whenLoaded(userUuid, () => undefined, scope?.claims).then(() => this.#writeShared(userUuid, fields, resources, scope));
    }
    return this.#writeShared(userUuid, fields, resources, scope);
  }

  /**
   * Deletes the user's context from Redis and from every instance's
   * near-cache (an invalidation tells the others); its resources are
   * disposed once no request holds them. Resolves whether a context was in
   * Redis or here. Rejects with `ContextStoreUnavailableError` when Redis
   * cannot be reached (then nothing was deleted, and never will be by this call).
   */
  override async deleteContext(userUuid: string): Promise<boolean> {
    if (this.closed) throw new StoreClosedError('The context store is closed; it cannot delete contexts any more.');
    return this.#saved === undefined ? this.#deleteShared(userUuid) : this.#saved.delete(userUuid);
  }

  async #deleteShared(userUuid: string): Promise<boolean> {
    const reply = await this.#runner.run(DELETE, this.keyOf(userUuid), (deadline) => [this.#channel, this.instanceId, userUuid, deadline]);
    this.#stats.deletes++;
    // A local entry on the defaults (version 0) is no stored context.
    const local = this.peekGeneration(userUuid);
    this.#dropLocal(userUuid);
    return reply === 1 || (local !== undefined && local.version > 0);
  }

  /**
   * Stops new scopes, waits for open ones (as the in-memory store), disposes
   * every local resource, then quits the Redis connections this store opened
   * (a client passed in `redis` is left open for its owner).
   */
  override close(options: { timeout?: number } = {}): Promise<void> {
    this.#shutdown ??= (async () => {
      try {
        await super.close(options);
      } finally {
        this.#fresh.clear();
        await Promise.allSettled([this.#subscription.close(), this.#ownsClient ? quit(this.#client) : undefined]);
      }
    })();
    return this.#shutdown;
  }

  /**
   * The near-cache entry if it may be served without asking Redis: the
   * subscription is confirmed and has been since the entry was read, and
   * (with `checkAge`) it was confirmed less than `revalidateInterval` ago.
   */
  #freshEntry(userUuid: string, checkAge: boolean): Fresh | undefined {
    if (!this.#subscription.active) return undefined;
    const fresh = this.#fresh.get(userUuid);
    if (fresh === undefined || fresh.epoch !== this.#subscription.epoch) return undefined;
    if (checkAge && localNow() - fresh.checkedAt >= this.#revalidateInterval) {
      this.#stats.revalidations++;
      return undefined;
    }
    return this.peekGeneration(userUuid) === undefined ? undefined : fresh;
  }

  async #loadAndOpen(userUuid: string, claims: Readonly<Record<string, unknown>> | undefined): Promise<Scope> {
    return this.#whenLoaded(userUuid, () => super.openScope(userUuid, claims), claims);
  }

  /**
   * Loads the user's context (single flight) and runs `then` synchronously
   * once it is in the near-cache. Redis failing with the context cached
   * here: `then` runs on the cached one if `consistency` is `'available'`
   * and no invalidation said it is outdated; otherwise the error.
   */
  async #whenLoaded<T>(userUuid: string, then: () => T, claims?: Claims): Promise<T> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.#fresh.fetch(userUuid, { forceRefresh: true, context: claims });
      } catch (error) {
        if (!(error instanceof ContextStoreUnavailableError)) throw error;
        // The app's loader failed: a user who has no context in Redis is never served the defaults.
        if (error instanceof ContextLoadError) throw error;
        // Strict, nothing cached, or what is cached is known to be outdated: 503.
        if (this.consistency === 'strict' || this.peekGeneration(userUuid) === undefined || this.#outdated.has(userUuid)) {
          throw error;
        }
        this.#stats.servedUnconfirmed++;
        warnOnce(
          'KUC_REDIS_STALE_READ',
          `Redis is unavailable (${error.message}); requests of users cached here are served from the near-cache ` +
            "(consistency: 'available'; set consistency: 'strict' to answer 503 instead).",
        );
      }
      if (this.closed) throw new StoreClosedError('The context store is closed; no new user scope can start.');
      // The local entry may have been evicted (LRU) between the load and now.
      if (this.peekGeneration(userUuid) !== undefined) return then();
    }
    throw new ContextStoreUnavailableError('The context could not be kept in the near-cache (it is full); retry shortly.');
  }

  async #load(userUuid: string, claims: Claims): Promise<Fresh> {
    let tick = ++this.#tick;
    const epoch = this.#subscription.epoch;
    const checkedAt = localNow();
    this.#stats.loads++;
    let { version, fields } = this.#decode(userUuid, await this.#loadScript(userUuid));
    if (version === 0 && this.#saved?.persistence.loads === true) {
      // Redis has no context for the user: the app's database has the last word.
      const loaded = await this.#saved.persistence.load(userUuid, claims, () => {});
      tick = ++this.#tick;
      ({ version, fields } = this.#decode(userUuid, await this.#saved.seed(userUuid, loaded)));
    }
    this.#adopt(userUuid, fields, version, tick, NO_RESOURCES, undefined);
    return { tick, epoch, checkedAt, touchedAt: Date.now() };
  }

  async #writeShared(
    userUuid: string,
    fields: Map<string, unknown>,
    resources: Map<ResourceName, unknown>,
    scope: Scope | undefined,
  ): Promise<Generation> {
    const encoded = this.#codec.encode(userUuid, fields);
    // A client in the patch was built for the scope's snapshot: store only if
    // Redis still holds that version, or a newer one that leaves the client's
    // fields as they were (checked here, then retried on that version).
    const guarded = resources.size > 0 && scope !== undefined && scope.open && scope.userUuid === userUuid;
    // With persistence.onCommit, what is saved is merged into a version, and stored only on that version.
    const saving = this.#saved?.persistence.saves === true;
    let base = saving ? await this.#current(userUuid, scope?.claims) : undefined;
    let expected = base !== undefined ? String(base.version) : guarded ? String(scope.gen.version) : '';
    for (let attempt = 0; ; attempt++) {
      if (base !== undefined) {
        if (guarded) this.#conflictCheck(scope, base, fields, resources);
        await this.#saved!.save(userUuid, base, fields);
      }
      const tick = ++this.#tick;
      let reply: unknown;
      try {
        reply = await this.#commitScript(userUuid, encoded, expected);
      } catch (error) {
        // Saved but not stored: drop the copies, so the database's answer is what is read next.
        if (!(error instanceof VersionMoved) && saving) await this.#saved!.dropEverywhere(userUuid);
        if (!(error instanceof VersionMoved) || (!guarded && !saving)) throw error;
        const current = await this.#whenLoaded(userUuid, () => this.peekGeneration(userUuid)!, scope?.claims);
        // (A saved write checks it at the top of the next round, against the version it merges into.)
        if (guarded && !saving) this.#conflictCheck(scope, current, fields, resources);
        if (attempt + 1 >= (saving ? SAVED_ATTEMPTS : CONFLICT_ATTEMPTS)) {
          this.#stats.conflicts++;
          if (saving) await this.#saved!.dropEverywhere(userUuid);
          throw new ConfigurationConflictError(
            'The configuration kept changing while this write was being stored; nothing was applied. Retry the request.',
          );
        }
        expected = String(current.version);
        if (saving) base = current;
        continue;
      }
      this.#stats.commits++;
      const stored = this.#decode(userUuid, reply);
      return this.#adopt(userUuid, stored.fields, stored.version, tick, resources, scope);
    }
  }

  /** The COMMIT script: `fields` (encoded) stored as one step if Redis holds version `expected` (`''`: any); the whole hash after it. */
  #commitScript(userUuid: string, encoded: readonly string[], expected: string): Promise<unknown> {
    return this.#runner.run(COMMIT, this.keyOf(userUuid), (deadline) => [
      String(Date.now()), String(this.#redisTtl), this.#channel, this.instanceId, userUuid, deadline, expected, ...encoded,
    ]);
  }

  /** The LOAD script: the user's hash (TTL and last access refreshed). */
  #loadScript(userUuid: string): Promise<unknown> {
    return this.#runner.run(LOAD, this.keyOf(userUuid), () => [String(Date.now()), String(this.#redisTtl)]);
  }

  /** The user's current generation here: the near-cache's if it may be served, else read from Redis (loaded if needed). */
  async #current(userUuid: string, claims: Claims): Promise<Generation> {
    if (this.#freshEntry(userUuid, true) !== undefined) return this.peekGeneration(userUuid)!;
    return this.#whenLoaded(userUuid, () => this.peekGeneration(userUuid)!, claims);
  }

  /** A patch of live resources only: they belong to this process, nothing goes to Redis. */
  async #writeLocal(userUuid: string, resources: Map<ResourceName, unknown>, scope: Scope | undefined): Promise<Generation> {
    const apply = (): Generation => {
      const local = this.peekGeneration(userUuid)!;
      if (scope !== undefined && scope.open && scope.userUuid === userUuid) this.#conflictCheck(scope, local, NO_FIELDS, resources);
      const gen = this.install(userUuid, new Map(Object.entries(local.config)), local.version, resources, true, scope);
      this.#sources.set(gen, this.#sources.get(local) ?? 0);
      return gen;
    };
    return this.#freshEntry(userUuid, true) !== undefined ? apply() : this.#whenLoaded(userUuid, apply);
  }

  #conflictCheck(scope: Scope, current: Generation, fields: ReadonlyMap<string, unknown>, resources: ReadonlyMap<ResourceName, unknown>): void {
    if (scope.gen.version === current.version) return;
    try {
      this.checkResourceBase(current, fields, resources, scope);
    } catch (error) {
      this.#stats.conflicts++;
      throw error;
    }
  }

  /**
   * Installs what Redis answered at logical time `tick`. Commands go through
   * one connection per node, so Redis executes them in the order they were
   * sent: an answer sent later than the one the local generation came from
   * reflects a state at least as new, and wins; an older answer is only
   * shown to its writer's scope.
   */
  #adopt(
    userUuid: string,
    fields: ReadonlyMap<string, unknown>,
    version: number,
    tick: number,
    resources: ReadonlyMap<ResourceName, unknown>,
    scope: Scope | undefined,
  ): Generation {
    const local = this.peekGeneration(userUuid);
    const current = local === undefined || tick > (this.#sources.get(local) ?? 0);
    const gen = this.install(userUuid, fields, version, resources, current, scope);
    if (current) {
      this.#sources.set(gen, tick);
      // Sent after the invalidation arrived: the reply includes that write.
      if ((this.#outdated.get(userUuid) ?? Number.POSITIVE_INFINITY) < tick) this.#outdated.delete(userUuid);
    }
    return gen;
  }

  #maybeTouch(userUuid: string, fresh: Fresh): void {
    if (this.#redisTtl === 0) return;
    const now = Date.now();
    if (now - fresh.touchedAt < this.#refreshInterval) return;
    fresh.touchedAt = now;
    const tick = ++this.#tick;
    this.#stats.touches++;
    this.#runner.run(TOUCH, this.keyOf(userUuid), () => [String(now), String(this.#redisTtl)]).then(
      (reply) => {
        const local = this.peekGeneration(userUuid);
        if (local === undefined || (this.#sources.get(local) ?? 0) > tick) return;
        const version = typeof reply === 'number' && reply > 0 ? reply : 0;
        // Missed an invalidation (or the context left Redis): read it again.
        if (version !== local.version) this.#fresh.delete(userUuid);
      },
      (error: unknown) => {
        fresh.touchedAt = 0;
        warnOnce('KUC_REDIS_TOUCH_FAILED', `Refreshing a context's TTL in Redis failed: ${toUnavailable(error).message}`);
      },
    );
  }

  /** Drops the user here (near-cache and local entry); returns whether an entry was here. */
  #dropLocal(userUuid: string): boolean {
    this.#fresh.delete(userUuid);
    this.#outdated.delete(userUuid);
    return super.evict(userUuid, 'manual');
  }

  /** `<origin> <version|del> <user>`, published by the scripts. */
  #invalidate(message: string): void {
    const first = message.indexOf(' ');
    const space = message.indexOf(' ', first + 1);
    if (first < 0 || space < 0) return;
    this.#stats.invalidations++;
    const token = message.slice(first + 1, space);
    const userUuid = message.slice(space + 1);
    if (token === 'del') {
      this.#dropLocal(userUuid);
      return;
    }
    // Our own writes too: if a write's reply was lost, the next read fixes it.
    this.#fresh.delete(userUuid);
    // Unless it is our own write, already installed here, the local copy is
    // outdated: if Redis fails before it is read again, do not serve it.
    const local = this.peekGeneration(userUuid);
    const own = message.slice(0, first) === this.instanceId && local?.version === Number(token);
    if (local !== undefined && !own) this.#outdated.set(userUuid, this.#tick);
  }

  #decode(userUuid: string, reply: unknown): ReturnType<FieldCodec['decode']> {
    try {
      return this.#codec.decode(userUuid, reply);
    } catch (error) {
      throw toUnavailable(error);
    }
  }
}

function notLoaded(userUuid: string): ContextNotLoadedError {
  return new ContextNotLoadedError(
    `The shared context of user ${userUuid} is not loaded in this process (or may be outdated). Read it inside a ` +
      'request, or in `await runAsUser(userUuid, fn)`, which load it from Redis first.',
  );
}
