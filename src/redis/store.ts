/**
 * A context store shared by several instances through Redis (ioredis).
 *
 * Redis holds each user's serialisable configuration (fields, last access,
 * version); each process keeps a near-cache of those configurations (the
 * in-memory store it extends) with its own live resources, rebuilt from the
 * shared configuration by `resources.*.create` and disposed here when the
 * configuration changes or the local entry goes. Writes go through a Lua
 * script (atomic; version bump; PUBLISH of an invalidation); every instance
 * subscribes to the invalidations and drops the user from its near-cache, so
 * the next request of that user reads Redis again.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { SECRET_FIELD_NAMES } from '../context/fields.js';
import { splitPatch } from '../context/values.js';
import { type ContextPatch, type ResourceName } from '../context/types.js';
import { ContextNotLoadedError, ContextStoreUnavailableError, StoreClosedError } from '../errors.js';
import type { Generation } from '../store/generation.js';
import { FieldCodec, toEncryptionKey, type EncryptionKeyInput } from './codec.js';
import { COMMIT, LOAD, TOUCH, type Script } from './scripts.js';
import type { Scope } from '../store/scope.js';
import { ContextStore, type ContextStoreOptions } from '../store/store.js';
import { warnOnce } from '../warn.js';

/** Options of {@link RedisContextStore}. */
export interface RedisContextStoreOptions extends ContextStoreOptions {
  /**
   * The Redis server: a URL such as `redis://127.0.0.1:6379` (the store opens
   * and closes its own connections, tuned to fail fast), or an ioredis client
   * (the store uses it for commands and leaves it open on `close()`; create it
   * with `enableOfflineQueue: false, maxRetriesPerRequest: 0,
   * autoResendUnfulfilledCommands: false` so a failed write is never replayed
   * later). A subscriber connection is always duplicated from it.
   */
  redis: Redis | string;
  /**
   * Extra ioredis options for the connections opened from a URL.
   * @default {}
   */
  redisOptions?: RedisOptions;
  /**
   * Prefix of every key and of the invalidation channel. Instances that share
   * contexts use the same prefix; different apps (or test runs) use different ones.
   * @default 'koa-user-context:'
   */
  keyPrefix?: string;
  /**
   * 32-byte AES-256-GCM key for the {@link secretFields}. Required unless
   * `secretFields` is empty; every instance sharing the prefix needs the same key.
   * @default undefined
   */
  encryptionKey?: EncryptionKeyInput;
  /**
   * Fields that may hold credentials (Azure keys, Friendli tokens, MCP server
   * headers): written to Redis encrypted, never in plain text.
   * @default SECRET_FIELD_NAMES: the built-in fields that may hold credentials
   */
  secretFields?: readonly string[];
  /**
   * The sliding TTL of a context in Redis is refreshed at most once per this
   * many ms per user and instance (reads never write more often). Redis keeps
   * a context for `ttl + refreshInterval` after its last refresh.
   * @default min(60_000, ttl / 4)
   */
  refreshInterval?: number;
  /**
   * A Redis command not answered within this many ms fails (503 for the request).
   * @default 2_000
   */
  commandTimeout?: number;
}

interface Fresh {
  /** Logical time at which the load that validated the entry was sent. */
  tick: number;
  /** Subscription epoch at that time: a resubscription invalidates everything. */
  subEpoch: number;
  /** When the Redis TTL was last refreshed by this instance. */
  touchedAt: number;
}

/** Counters of the Redis traffic of one store. */
export interface RedisStoreStats {
  /** Contexts read from Redis (near-cache misses, after single flight). */
  loads: number;
  /** Writes stored. */
  commits: number;
  /** TTL refreshes sent. */
  touches: number;
  /** Invalidation messages received. */
  invalidations: number;
}

const DEFAULT_SECRET_FIELDS = SECRET_FIELD_NAMES;
const NO_RESOURCES: ReadonlyMap<ResourceName, unknown> = new Map();

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
 * (about a millisecond on a LAN; the tests hold it to 100 ms).
 */
export class RedisContextStore extends ContextStore {
  /** @internal */
  static override readonly kind: string = 'RedisContextStore';
  /** Options this store takes on top of the in-memory store's (the unknown-option check reads it). @internal */
  static override readonly extraOptions: readonly string[] = Object.keys({
    redis: 1, redisOptions: 1, keyPrefix: 1, encryptionKey: 1, secretFields: 1, refreshInterval: 1, commandTimeout: 1,
  } satisfies Record<Exclude<keyof RedisContextStoreOptions, keyof ContextStoreOptions>, 1>);

  /** Prefix of the keys and channel. */
  readonly keyPrefix: string;
  /** Identifies this instance in invalidation messages. */
  readonly instanceId: string = randomUUID();

  readonly #client: Redis;
  readonly #sub: Redis;
  readonly #ownsClient: boolean;
  readonly #codec: FieldCodec;
  readonly #channel: string;
  readonly #redisTtl: number;
  readonly #refreshInterval: number;
  readonly #timeout: number;
  readonly #fresh: LRUCache<string, Fresh>;
  /**
   * Users whose local generation an invalidation reported outdated, with the
   * logical time it arrived: never served from the near-cache when Redis
   * fails (503 instead); cleared by a Redis reply sent after that time.
   */
  readonly #outdated: LRUCache<string, number>;
  /** Logical time of the Redis reply each local generation came from. */
  readonly #sources = new WeakMap<Generation, number>();
  readonly #stats: RedisStoreStats = { loads: 0, commits: 0, touches: 0, invalidations: 0 };
  #tick = 0;
  #subEpoch = 0;
  #subscribed = false;
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
    this.#channel = `${keyPrefix}invalidate`;
    this.#refreshInterval = refreshInterval;
    this.#redisTtl = this.ttl > 0 ? this.ttl + refreshInterval : 0;
    this.#timeout = commandTimeout;
    const key = options.encryptionKey === undefined ? undefined : toEncryptionKey(options.encryptionKey);
    this.#codec = new FieldCodec(key, new Set(secretFields), keyPrefix);

    const onError = (error: Error): void => {
      warnOnce('KUC_REDIS_ERROR', `Redis connection error (the client reconnects by itself): ${error.message}`);
    };
    if (typeof redis === 'string') {
      this.#client = new Redis(redis, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        retryStrategy: (times) => Math.min(times * 50, 1_000),
        commandTimeout,
        connectionName: `koa-user-context:${this.instanceId}`,
        ...options.redisOptions,
      });
      this.#client.on('error', onError);
      this.#ownsClient = true;
    } else {
      this.#client = redis;
      this.#ownsClient = false;
      const o = redis.options;
      if (o.enableOfflineQueue !== false || o.autoResendUnfulfilledCommands !== false) {
        warnOnce(
          'KUC_REDIS_CLIENT_OPTIONS',
          'The ioredis client given to RedisContextStore queues or replays commands while disconnected: a write ' +
            'reported as failed (503) could still be applied after the reconnection. Create it with ' +
            'enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false.',
        );
      }
    }
    this.#sub = this.#client.duplicate({
      autoResubscribe: false,
      enableOfflineQueue: true,
      connectionName: `koa-user-context:${this.instanceId}:sub`,
    });
    this.#sub.on('error', onError);
    this.#sub.on('ready', () => this.#subscribe());
    this.#sub.on('close', () => {
      this.#subscribed = false;
    });
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#invalidate(message);
    });

    this.#fresh = new LRUCache<string, Fresh>({
      max: this.max,
      // Deleting an entry while it loads (an invalidation) must not fail the
      // requests waiting for it: they get the result, which is not cached.
      ignoreFetchAbort: true,
      fetchMethod: (userUuid) => this.#load(userUuid),
    });
    this.#outdated = new LRUCache<string, number>({ max: this.max });
  }

  /** Counters of Redis reads and writes done by this store. */
  get stats(): Readonly<RedisStoreStats> {
    return { ...this.#stats };
  }

  /** Whether requests can be served from Redis now (commands and invalidations connected). */
  get ready(): boolean {
    return !this.closed && this.#client.status === 'ready' && this.#subscribed;
  }

  /** The readiness check: what `GET /ready` reports. */
  readiness(): { ready: boolean; redis: string; invalidations: 'subscribed' | 'disconnected'; closed: boolean } {
    return {
      ready: this.ready,
      redis: this.#client.status,
      invalidations: this.#subscribed ? 'subscribed' : 'disconnected',
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
   * near-cache holds it and no invalidation arrived since it was read;
   * otherwise after one Redis read (shared by every concurrent request of the
   * user). Redis unreachable: a context cached here is served as it is; a
   * context not cached here rejects with `ContextStoreUnavailableError` (503).
   */
  override acquireScope(userUuid: string, claims?: Readonly<Record<string, unknown>>): Scope | Promise<Scope> {
    if (this.closed) return super.openScope(userUuid, claims);
    const fresh = this.#freshEntry(userUuid);
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
    if (!this.closed && this.#freshEntry(userUuid) === undefined) throw notLoaded(userUuid);
    return super.openScope(userUuid, claims);
  }

  /** The user's current generation, if it is current in the near-cache; else throws `ContextNotLoadedError`. */
  override currentGeneration(userUuid: string): Generation {
    if (this.#freshEntry(userUuid) === undefined) throw notLoaded(userUuid);
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
   * resources in the patch (`llmInstance`, `mcpClient`) stay in this process.
   * Rejects with `ContextStoreUnavailableError` when Redis cannot be reached:
   * nothing is applied here, and in Redis the write is all or nothing.
   */
  override write(userUuid: string | null, patch: ContextPatch, scope?: Scope): Generation | Promise<Generation> {
    if (userUuid === null) return super.write(null, patch, scope);
    if (this.closed) throw new StoreClosedError('The context store is closed; it cannot store configurations any more.');
    const { fields, resources } = splitPatch(patch);
    return fields.size === 0 ? this.#writeLocal(userUuid, resources, scope) : this.#writeShared(userUuid, fields, resources, scope);
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
        await Promise.allSettled([quit(this.#sub), this.#ownsClient ? quit(this.#client) : undefined]);
      }
    })();
    return this.#shutdown;
  }

  #freshEntry(userUuid: string): Fresh | undefined {
    if (!this.#subscribed) return undefined;
    const fresh = this.#fresh.get(userUuid);
    if (fresh === undefined || fresh.subEpoch !== this.#subEpoch) return undefined;
    return this.peekGeneration(userUuid) === undefined ? undefined : fresh;
  }

  async #loadAndOpen(userUuid: string, claims: Readonly<Record<string, unknown>> | undefined): Promise<Scope> {
    return this.#whenLoaded(userUuid, () => super.openScope(userUuid, claims));
  }

  /**
   * Loads the user's context (single flight) and runs `then` synchronously
   * once it is in the near-cache. Redis failing with the context cached here:
   * `then` runs on the cached one.
   */
  async #whenLoaded<T>(userUuid: string, then: () => T): Promise<T> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.#fresh.fetch(userUuid, { forceRefresh: true });
      } catch (error) {
        if (!(error instanceof ContextStoreUnavailableError)) throw error;
        // Nothing cached, or what is cached is known to be outdated: 503.
        if (this.peekGeneration(userUuid) === undefined || this.#outdated.has(userUuid)) throw error;
        warnOnce(
          'KUC_REDIS_STALE_READ',
          `Redis is unavailable (${error.message}); requests of users cached here are served from the near-cache.`,
        );
      }
      if (this.closed) throw new StoreClosedError('The context store is closed; no new user scope can start.');
      // The local entry may have been evicted (LRU) between the load and now.
      if (this.peekGeneration(userUuid) !== undefined) return then();
    }
    throw new ContextStoreUnavailableError('The context could not be kept in the near-cache (it is full); retry shortly.');
  }

  async #load(userUuid: string): Promise<Fresh> {
    const tick = ++this.#tick;
    const subEpoch = this.#subEpoch;
    this.#stats.loads++;
    const reply = await this.#run(LOAD, userUuid, [String(Date.now()), String(this.#redisTtl)]);
    const { version, fields } = this.#decode(userUuid, reply);
    this.#adopt(userUuid, fields, version, tick, NO_RESOURCES, undefined);
    return { tick, subEpoch, touchedAt: Date.now() };
  }

  async #writeShared(
    userUuid: string,
    fields: Map<string, unknown>,
    resources: Map<ResourceName, unknown>,
    scope: Scope | undefined,
  ): Promise<Generation> {
    const encoded = this.#codec.encode(userUuid, fields);
    const tick = ++this.#tick;
    this.#stats.commits++;
    const reply = await this.#run(COMMIT, userUuid, [
      String(Date.now()),
      String(this.#redisTtl),
      this.#channel,
      this.instanceId,
      userUuid,
      ...encoded,
    ]);
    const stored = this.#decode(userUuid, reply);
    return this.#adopt(userUuid, stored.fields, stored.version, tick, resources, scope);
  }

  /** A patch of live resources only: they belong to this process, nothing goes to Redis. */
  async #writeLocal(userUuid: string, resources: Map<ResourceName, unknown>, scope: Scope | undefined): Promise<Generation> {
    const apply = (): Generation => {
      const local = this.peekGeneration(userUuid)!;
      const gen = this.install(userUuid, new Map(Object.entries(local.config)), local.version, resources, true, scope);
      this.#sources.set(gen, this.#sources.get(local) ?? 0);
      return gen;
    };
    return this.peekGeneration(userUuid) !== undefined ? apply() : this.#whenLoaded(userUuid, apply);
  }

  /**
   * Installs what Redis answered at logical time `tick`. Commands go through
   * one connection, so Redis executes them in the order they were sent: an
   * answer sent later than the one the local generation came from reflects a
   * state at least as new, and wins; an older answer is only shown to its
   * writer's scope.
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
    this.#run(TOUCH, userUuid, [String(now), String(this.#redisTtl)]).then(
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

  #invalidate(message: string): void {
    const first = message.indexOf(' ');
    const space = message.indexOf(' ', first + 1);
    if (first < 0 || space < 0) return;
    this.#stats.invalidations++;
    const userUuid = message.slice(space + 1);
    // Our own writes too: if a write's reply was lost, the next read fixes it.
    this.#fresh.delete(userUuid);
    // Unless it is our own write, already installed here, the local copy is
    // outdated: if Redis fails before it is read again, do not serve it.
    const local = this.peekGeneration(userUuid);
    const own = message.slice(0, first) === this.instanceId && local?.version === Number(message.slice(first + 1, space));
    if (local !== undefined && !own) this.#outdated.set(userUuid, this.#tick);
  }

  #subscribe(): void {
    this.#sub.subscribe(this.#channel).then(
      () => {
        // Invalidations may have been missed while unsubscribed: everything
        // cached before now must be read again.
        this.#subEpoch++;
        this.#subscribed = true;
      },
      (error: unknown) => {
        warnOnce('KUC_REDIS_SUBSCRIBE_FAILED', `Subscribing to ${this.#channel} failed: ${String(error)}`);
      },
    );
  }

  #decode(userUuid: string, reply: unknown): ReturnType<FieldCodec['decode']> {
    try {
      return this.#codec.decode(userUuid, reply);
    } catch (error) {
      throw toUnavailable(error);
    }
  }

  async #run(script: Script, userUuid: string, args: string[]): Promise<unknown> {
    const status = this.#client.status;
    if (status !== 'ready') {
      throw new ContextStoreUnavailableError(`Redis is not connected (${status}); retry in a few seconds.`);
    }
    const key = this.keyOf(userUuid);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new ContextStoreUnavailableError(`Redis did not answer within ${this.#timeout} ms; retry shortly.`));
      }, this.#timeout);
    });
    const call = async (): Promise<unknown> => {
      try {
        return await this.#client.evalsha(script.sha, 1, key, ...args);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return this.#client.eval(script.source, 1, key, ...args);
      }
    };
    try {
      return await Promise.race([call(), timeout]);
    } catch (error) {
      throw toUnavailable(error);
    } finally {
      clearTimeout(timer);
    }
  }
}

function checkOptions(options: RedisContextStoreOptions): RedisContextStoreOptions {
  if (options === null || typeof options !== 'object') {
    throw new TypeError("RedisContextStore(options): options is required, e.g. { redis: 'redis://127.0.0.1:6379', encryptionKey }");
  }
  const { redis, keyPrefix, commandTimeout, secretFields, encryptionKey } = options;
  const isClient = redis !== null && typeof redis === 'object' && typeof (redis as Redis).duplicate === 'function';
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\//.test(redis)) throw new TypeError(`options.redis must be a redis:// or rediss:// URL, got "${redis}"`);
  } else if (!isClient) {
    throw new TypeError('options.redis must be a Redis URL (redis://host:port) or an ioredis client');
  }
  if (keyPrefix !== undefined && (typeof keyPrefix !== 'string' || keyPrefix === '' || /\s/.test(keyPrefix))) {
    throw new TypeError('options.keyPrefix must be a non-empty string without spaces');
  }
  if (commandTimeout !== undefined && (!Number.isFinite(commandTimeout) || commandTimeout <= 0)) {
    throw new TypeError('options.commandTimeout must be a number of milliseconds > 0');
  }
  if (secretFields !== undefined && (!Array.isArray(secretFields) || secretFields.some((f) => typeof f !== 'string'))) {
    throw new TypeError('options.secretFields must be an array of field names');
  }
  if ((secretFields ?? DEFAULT_SECRET_FIELDS).length > 0 && encryptionKey === undefined) {
    throw new TypeError(
      `options.encryptionKey is required: credentials in ${(secretFields ?? DEFAULT_SECRET_FIELDS).join(', ')} are ` +
        'encrypted before they reach Redis. Give the same 32-byte key to every instance (or set secretFields: [] if ' +
        'those fields never hold a credential).',
    );
  }
  if (encryptionKey !== undefined) toEncryptionKey(encryptionKey);
  return options;
}

function notLoaded(userUuid: string): ContextNotLoadedError {
  return new ContextNotLoadedError(
    `The shared context of user ${userUuid} is not loaded in this process (or may be outdated). Read it inside a ` +
      'request, or in `await runAsUser(userUuid, fn)`, which load it from Redis first.',
  );
}

function toUnavailable(error: unknown): ContextStoreUnavailableError {
  if (error instanceof ContextStoreUnavailableError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new ContextStoreUnavailableError(`The shared context store (Redis) failed: ${detail}. Retry in a few seconds.`, {
    cause: error,
  });
}

async function quit(client: Redis | undefined): Promise<void> {
  if (client === undefined || client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
