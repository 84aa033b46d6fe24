/**
 * The in-memory store's paths through the app's database (`options.persistence`):
 * a user not cached is loaded before being served, a user's write is saved
 * before it is applied, a delete reaches the database first. The store lends
 * the few operations these need ({@link LoaderHost}); the calls themselves
 * (single flight, timeouts, order, errors) are {@link Persistence}'s, shared
 * with the Redis store.
 *
 * @internal
 * @module
 */
import type { ContextPatch, ResourceName } from '../context/types.js';
import { mergeConfig, splitPatch } from '../context/values.js';
import { ContextNotLoadedError, StoreClosedError } from '../errors.js';
import type { Generation } from './generation.js';
import type { EvictionReason } from './options.js';
import type { Persistence } from './persistence.js';
import type { Scope } from './scope.js';

/** What the store lends to its {@link Loader}. */
export interface LoaderHost {
  /** Whether the user is cached here (without refreshing the entry). */
  cached(userUuid: string): boolean;
  /** Whether the store is closing. */
  closing(): boolean;
  /** The user's current generation, the entry refreshed (created if absent). */
  touch(userUuid: string): Generation;
  /** The store's own synchronous commit. */
  commit(userUuid: string, patch: ContextPatch, scope: Scope | undefined): Generation;
  /** The stale-client check of a write handing over live resources. */
  checkBase(base: Generation, fields: ReadonlyMap<string, unknown>, resources: ReadonlyMap<ResourceName, unknown>, scope: Scope): void;
  /** Installs a full configuration as the user's current one, at `version`. */
  install(userUuid: string, fields: ReadonlyMap<string, unknown>, version: number, resources: ReadonlyMap<ResourceName, unknown>, scope?: Scope): Generation;
  /** Drops the user's entry; whether there was one. */
  drop(userUuid: string, reason: EvictionReason): boolean;
}

/** @internal */
export class Loader {
  readonly persistence: Persistence;
  readonly #host: LoaderHost;

  constructor(persistence: Persistence, host: LoaderHost) {
    this.persistence = persistence;
    this.#host = host;
  }

  /** Whether the user must be loaded before being served: a loader is set and the user is not cached. */
  cold(userUuid: string): boolean {
    return this.persistence.loads && !this.#host.cached(userUuid) && !this.#host.closing();
  }

  /** Throws `ContextNotLoadedError` for a synchronous read of a user not cached. */
  requireLoaded(userUuid: string): void {
    if (!this.cold(userUuid)) return;
    throw new ContextNotLoadedError(
      `The context of user ${userUuid} is not cached, and this store loads it with persistence.load first. Read it inside a ` +
        'request, or in `await runAsUser(userUuid, fn)`, which load it.',
    );
  }

  /** Throws `ContextNotLoadedError`: a user's configuration is saved before it is applied, which `commit()` cannot wait for. */
  refuseSyncCommit(): never {
    throw new ContextNotLoadedError(
      'A store with options.persistence saves a user configuration before applying it, which cannot be done synchronously; ' +
        'use configureUser() / the setters, or await store.write(userUuid, patch).',
    );
  }

  /** Loads a user not cached (single flight) and installs the saved fields over the defaults. */
  load(userUuid: string, claims: Readonly<Record<string, unknown>> | undefined): Promise<unknown> {
    return this.persistence.load(userUuid, claims, (fields) => {
      if (this.#host.closing()) throw new StoreClosedError('The context store is closed; no new user scope can start.');
      if (!this.#host.cached(userUuid)) this.#host.install(userUuid, fields, 0, new Map());
    });
  }

  /**
   * A user's write: on the loaded context, saved by `onCommit` (the whole
   * configuration it produces) before it is applied, one at a time per user.
   * A failed save applies nothing and drops the cached context, so the next
   * request reads what the database holds.
   */
  write(userUuid: string, patch: ContextPatch, scope: Scope | undefined): Promise<Generation> {
    return this.persistence.serialize(userUuid, async () => {
      const { fields, resources } = splitPatch(patch);
      while (this.cold(userUuid)) await this.load(userUuid, scope?.claims);
      const base = this.#host.touch(userUuid);
      if (!this.persistence.saves || fields.size === 0) return this.#host.commit(userUuid, patch, scope);
      if (resources.size > 0 && scope !== undefined) this.#host.checkBase(base, fields, resources, scope);
      const { config, changed } = mergeConfig(base.config, fields, base.config);
      try {
        await this.persistence.save(userUuid, config, base.version + 1, changed);
      } catch (error) {
        this.#host.drop(userUuid, 'unsaved');
        throw error;
      }
      if (this.#host.closing()) {
        throw new StoreClosedError('The context store closed while the write was being saved; it was saved but not applied here.');
      }
      return this.#host.install(userUuid, new Map(Object.entries(config)), base.version + 1, resources, scope);
    });
  }

  /** `onDelete`, then the entry goes either way (the next request reads the database). */
  delete(userUuid: string): Promise<boolean> {
    return this.persistence.serialize(userUuid, async () => {
      let saved: boolean | undefined;
      let local = false;
      try {
        saved = await this.persistence.remove(userUuid);
      } finally {
        local = this.#host.drop(userUuid, 'manual');
      }
      return saved === true || local;
    });
  }
}
