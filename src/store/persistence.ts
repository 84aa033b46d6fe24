/**
 * The seam between a store and the app's own database: the store is the
 * cache, the database is the source of truth. One implementation, used by
 * the in-memory `ContextStore` and by `RedisContextStore`:
 *
 * - `load(userUuid, { claims, signal })` is called once on a cold miss (the
 *   user's context is not cached): concurrent first requests of a user share
 *   one call (single flight). What it returns is validated like any write;
 *   its failure is a {@link ContextLoadError} (503), never the defaults and
 *   never another user's context.
 * - `onCommit(userUuid, context, { version, changed, signal })` is awaited
 *   before a write is acknowledged, with the full configuration the write
 *   produces; a user's writes reach it one at a time, in commit order. Its
 *   failure is a {@link ContextSaveError} (503): the write is not applied,
 *   and the user's cached context is dropped so that the next request reads
 *   the database again.
 * - `onDelete(userUuid, { signal })` likewise, before `deleteContext()`.
 *
 * @module
 */
import type { UserConfig, UserContextFields } from '../context/types.js';
import { splitPatch } from '../context/values.js';
import { ContextLoadError, ContextSaveError } from '../errors.js';
import { rejectUnknownOptions } from '../options.js';
import { warnOnce } from '../warn.js';

/** What the loader is given. */
export interface LoadInfo {
  /** The verified claims of the request that missed (`undefined` for `runAsUser` without `claims`, and for writes). */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** Aborted when the call times out or the store closes. */
  readonly signal: AbortSignal;
}

/** What the commit hook is given besides the configuration. */
export interface CommitInfo {
  /** The version the store gives this configuration (one more than the one it replaces). */
  readonly version: number;
  /** The fields whose value this write changes. */
  readonly changed: readonly string[];
  /** Aborted when the call times out or the store closes. */
  readonly signal: AbortSignal;
}

/** What the delete hook is given. */
export interface DeleteInfo {
  /** Aborted when the call times out or the store closes. */
  readonly signal: AbortSignal;
}

/** The saved choices of a user as the loader returns them: fields only; `null` for none. */
export type LoadedContext = Partial<UserContextFields> | null | undefined;

/**
 * Where users' choices are kept for good: the app's database. The store in
 * front of it is a cache (see docs/persistence.md).
 */
export interface ContextPersistence {
  /**
   * Reads a user's saved configuration when it is not cached (a new process,
   * an evicted or expired user). Return the saved fields (secrets decrypted),
   * or `null` when the user has none (the defaults apply). Called once per
   * cold miss: concurrent requests of the user share the call.
   * @default undefined (a user not cached starts from the defaults)
   */
  load?: (userUuid: string, info: LoadInfo) => LoadedContext | Promise<LoadedContext>;
  /**
   * Saves the configuration a write produces (every field, app fields
   * included, secrets in clear: encrypt them in your database). Awaited
   * before the write is acknowledged; one call at a time per user, in commit
   * order. Throwing or rejecting refuses the write.
   * @default undefined (writes are kept in the store only)
   */
  onCommit?: (userUuid: string, context: UserConfig, info: CommitInfo) => unknown;
  /**
   * Deletes a user's saved configuration, before `deleteContext()` (the
   * admin API's DELETE) drops the cached one. May resolve whether a saved
   * configuration was there. Throwing or rejecting fails the delete.
   * @default undefined
   */
  onDelete?: (userUuid: string, info: DeleteInfo) => unknown;
  /**
   * Milliseconds each call may take; then its `signal` is aborted and the
   * request (or write) fails with 503.
   * @default 5_000
   */
  timeout?: number;
}

const PERSISTENCE_KEYS = ['load', 'onCommit', 'onDelete', 'timeout'] as const satisfies readonly (keyof ContextPersistence)[];

/** The store's side of {@link ContextPersistence}: validated once, single flight, timeouts, per-user order. @internal */
export class Persistence {
  readonly #spec: ContextPersistence;
  readonly #timeout: number;
  readonly #flights = new Map<string, Promise<ReadonlyMap<string, unknown>>>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #closing = new AbortController();

  constructor(spec: ContextPersistence) {
    if (spec === null || typeof spec !== 'object') throw new TypeError('options.persistence must be an object');
    rejectUnknownOptions(spec, PERSISTENCE_KEYS, 'options.persistence');
    for (const name of ['load', 'onCommit', 'onDelete'] as const) {
      if (spec[name] !== undefined && typeof spec[name] !== 'function') {
        throw new TypeError(`options.persistence.${name} must be a function`);
      }
    }
    const timeout = spec.timeout ?? 5_000;
    if (!Number.isFinite(timeout) || timeout <= 0) throw new TypeError('options.persistence.timeout must be a number of milliseconds > 0');
    this.#spec = { ...spec };
    this.#timeout = timeout;
  }

  /** Whether a user not cached is loaded (a `load` is configured). */
  get loads(): boolean {
    return this.#spec.load !== undefined;
  }

  /** Whether writes are saved (an `onCommit` is configured). */
  get saves(): boolean {
    return this.#spec.onCommit !== undefined;
  }

  /**
   * The user's saved fields, validated and frozen (empty: none saved). Single
   * flight: concurrent callers share one call of the loader; `adopt` runs
   * once, when it answers, before any caller resumes.
   */
  load(userUuid: string, claims: LoadInfo['claims'], adopt: (fields: ReadonlyMap<string, unknown>) => void): Promise<ReadonlyMap<string, unknown>> {
    const inFlight = this.#flights.get(userUuid);
    if (inFlight !== undefined) return inFlight;
    const flight = this.#call('load', (signal) => this.#spec.load!(userUuid, { claims, signal }))
      .then((loaded) => {
        const fields = validateLoaded(loaded);
        adopt(fields);
        return fields;
      }, (cause: unknown) => {
        throw failure(ContextLoadError, 'load', cause, this.#timeout);
      })
      .finally(() => this.#flights.delete(userUuid));
    this.#flights.set(userUuid, flight);
    return flight;
  }

  /** Awaits `onCommit` for the configuration a write produces; a {@link ContextSaveError} when it fails. */
  async save(userUuid: string, context: UserConfig, version: number, changed: Iterable<string>): Promise<void> {
    if (this.#spec.onCommit === undefined) return;
    const info = { version, changed: Object.freeze([...changed]) };
    try {
      await this.#call('onCommit', (signal) => this.#spec.onCommit!(userUuid, context, { ...info, signal }));
    } catch (cause) {
      throw failure(ContextSaveError, 'onCommit', cause, this.#timeout);
    }
  }

  /** Awaits `onDelete`; resolves its answer when it is a boolean. */
  async remove(userUuid: string): Promise<boolean | undefined> {
    if (this.#spec.onDelete === undefined) return undefined;
    try {
      const answer = await this.#call('onDelete', (signal) => this.#spec.onDelete!(userUuid, { signal }));
      return typeof answer === 'boolean' ? answer : undefined;
    } catch (cause) {
      throw failure(ContextSaveError, 'onDelete', cause, this.#timeout);
    }
  }

  /** Runs `task` after every earlier task of the same user has settled: a user's writes reach the hooks one at a time, in order. */
  serialize<T>(userUuid: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(userUuid);
    const run = previous === undefined ? task() : previous.then(task, task);
    const settled = run.then(noop, noop);
    this.#queues.set(userUuid, settled);
    void settled.then(() => {
      if (this.#queues.get(userUuid) === settled) this.#queues.delete(userUuid);
    });
    return run;
  }

  /** Aborts the calls in flight (the store is closing). */
  close(): void {
    this.#closing.abort(new Error('the context store is closing'));
  }

  /** Calls the app with a signal aborted after `timeout` ms or on close; settles no later than that, whatever the app does. */
  #call<T>(what: string, run: (signal: AbortSignal) => T): Promise<Awaited<T>> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new TimeoutError(`${what} did not answer within ${this.#timeout} ms`)), this.#timeout);
    const onClose = (): void => controller.abort(this.#closing.signal.reason);
    if (this.#closing.signal.aborted) onClose();
    else this.#closing.signal.addEventListener('abort', onClose, { once: true });
    return new Promise<Awaited<T>>((resolve, reject) => {
      if (controller.signal.aborted) return reject(controller.signal.reason);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
      Promise.resolve()
        .then(() => run(controller.signal))
        .then((value) => resolve(value as Awaited<T>), reject);
    }).finally(() => {
      clearTimeout(timer);
      this.#closing.signal.removeEventListener('abort', onClose);
    });
  }
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

function noop(): void {}

const ROLE = { load: 'loaded from', onCommit: 'saved to', onDelete: 'deleted from' } as const;

/** The request-facing error: says what failed and what to do, never the app's own message (it reaches the client). */
function failure(
  cls: typeof ContextLoadError | typeof ContextSaveError,
  what: keyof typeof ROLE,
  cause: unknown,
  timeout: number,
): ContextLoadError | ContextSaveError {
  if (cause instanceof cls) return cause;
  const timedOut = cause instanceof TimeoutError;
  // The app's message may carry a connection string: only its name and code are logged; it stays the error's `cause`.
  const code = (cause as { code?: unknown } | null)?.code;
  const kind = `${cause instanceof Error ? cause.name : typeof cause}${typeof code === 'string' ? ` ${code}` : ''}`;
  warnOnce(
    what === 'load' ? 'KUC_PERSISTENCE_LOAD_FAILED' : 'KUC_PERSISTENCE_SAVE_FAILED',
    `persistence.${what} ${timedOut ? `did not answer within ${timeout} ms` : `failed (${kind})`}; the requests concerned were answered 503 ` +
      "and the error's cause holds the app's error. Check the app's database.",
  );
  const detail = timedOut ? `did not answer within ${timeout} ms` : 'failed';
  const message =
    what === 'load'
      ? `This user's saved configuration could not be loaded from the app's database (persistence.load ${detail}); nothing was served. Retry shortly.`
      : `This change could not be ${ROLE[what]} the app's database (persistence.${what} ${detail}); it was not applied. Retry shortly.`;
  return new cls(message, { cause });
}

/** What the loader returned, as frozen fields: refused like a bad write (with the reason) when it is not a configuration. */
function validateLoaded(loaded: unknown): ReadonlyMap<string, unknown> {
  if (loaded === null || loaded === undefined) return new Map();
  try {
    const { fields, resources } = splitPatch(loaded);
    if (resources.size > 0) {
      throw new TypeError(`it holds live resources (${[...resources.keys()].join(', ')}); return configuration fields only`);
    }
    return fields;
  } catch (cause) {
    throw new ContextLoadError(
      "This user's saved configuration could not be used: persistence.load returned something that is not a configuration " +
        '(return an object of fields, or null for none). Nothing was served.',
      { cause },
    );
  }
}
