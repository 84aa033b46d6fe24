/**
 * The Redis store's side of the app's database (`options.persistence`):
 * Redis is the shared cache in front of it. A user Redis has no context for
 * is loaded from `persistence.load` and stored in Redis unless another
 * instance stored one first; a saved write's failure, and a delete, drop the
 * user's copies everywhere (Redis and every near-cache), so that the next
 * request reads the database. The calls themselves (single flight, timeouts,
 * per-user order, errors) are {@link Persistence}'s, shared with the
 * in-memory store.
 *
 * @internal
 * @module
 */
import { mergeConfig } from '../context/values.js';
import type { Generation } from '../store/generation.js';
import type { Persistence } from '../store/persistence.js';
import { VersionMoved } from './runner.js';

/** The verified claims of the request that reads (handed to `persistence.load`). */
export type Claims = Readonly<Record<string, unknown>> | undefined;

/** What the Redis store lends. */
export interface SharedOps {
  /** The COMMIT script for encoded `fields` if Redis holds version `expected`: the whole hash after it (rejects `VersionMoved`). */
  commit(userUuid: string, fields: ReadonlyMap<string, unknown>, expected: string): Promise<unknown>;
  /** The LOAD script: the user's hash. */
  read(userUuid: string): Promise<unknown>;
  /** Deletes the user's context from Redis and every near-cache; whether Redis had it. */
  deleteShared(userUuid: string): Promise<boolean>;
  /** Drops the user from this instance only. */
  dropLocal(userUuid: string): void;
}

/** @internal */
export class SharedPersistence {
  readonly persistence: Persistence;
  readonly #ops: SharedOps;

  constructor(persistence: Persistence, ops: SharedOps) {
    this.persistence = persistence;
    this.#ops = ops;
  }

  /** Stores what `persistence.load` returned for a user Redis has no context for, unless another instance stored one first (then that one); the raw reply. */
  async seed(userUuid: string, loaded: ReadonlyMap<string, unknown>): Promise<unknown> {
    try {
      return await this.#ops.commit(userUuid, loaded, '0');
    } catch (error) {
      if (!(error instanceof VersionMoved)) throw error;
      return this.#ops.read(userUuid);
    }
  }

  /** `onCommit` for `fields` merged into `base`; a failure stores nothing and drops the user everywhere. */
  async save(userUuid: string, base: Generation, fields: ReadonlyMap<string, unknown>): Promise<void> {
    const { config, changed } = mergeConfig(base.config, fields, base.config);
    try {
      await this.persistence.save(userUuid, config, base.version + 1, changed);
    } catch (error) {
      await this.dropEverywhere(userUuid);
      throw error;
    }
  }

  /** `onDelete`, then the shared delete; after a failure the copies go all the same. */
  delete(userUuid: string): Promise<boolean> {
    return this.persistence.serialize(userUuid, async () => {
      let saved: boolean | undefined;
      try {
        saved = await this.persistence.remove(userUuid);
      } catch (error) {
        await this.dropEverywhere(userUuid);
        throw error;
      }
      return (await this.#ops.deleteShared(userUuid)) || saved === true;
    });
  }

  /** The user's copies in Redis and here go (best effort: here at least), so the next request reads the app's database. */
  async dropEverywhere(userUuid: string): Promise<void> {
    try {
      await this.#ops.deleteShared(userUuid);
    } catch {
      this.#ops.dropLocal(userUuid);
    }
  }
}
