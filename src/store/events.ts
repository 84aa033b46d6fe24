/**
 * The observer mechanism: a tiny typed event emitter that the store, the
 * middleware and the helpers report to, so metrics, audit logs or tests can
 * watch the library without the core knowing about them. With nobody
 * listening an emit costs one array-length check; hot paths also test
 * {@link ContextEvents.listening} before building a payload.
 *
 * ```ts
 * const store = new ContextStore();
 * store.events.on('evicted', ({ userUuid, reason }) => log.info({ userUuid, reason }, 'context evicted'));
 * ```
 *
 * @module
 */
import type { ResourceName } from '../context/types.js';
import type { EvictionReason } from './store.js';
import { isKind, stamp } from '../brand.js';
import { WARNING_TYPE } from '../warn.js';

/**
 * Why a context (or a configuration's resources) went away: an
 * {@link EvictionReason} of the store, or `'replaced'` when a commit
 * (`configureUser`, `set*`) replaced a generation and dropped live resources
 * it held (they are disposed once no request uses them).
 */
export type ContextEvictionReason = EvictionReason | 'replaced';

/** Every {@link ContextEvictionReason}, once. */
export const CONTEXT_EVICTION_REASONS: readonly ContextEvictionReason[] = Object.freeze(
  Object.keys({ expired: 1, evicted: 1, manual: 1, inactive: 1, closed: 1, unsaved: 1, replaced: 1 } satisfies Record<ContextEvictionReason, 1>) as ContextEvictionReason[],
);

/** Every event and its payload. */
export interface ContextEventMap {
  /**
   * A user's context was brought into the store: `'created'` for a new one
   * (the in-memory store), `'shared'` for one loaded from a shared store.
   */
  contextLoaded: { readonly userUuid: string; readonly source: 'created' | 'shared' };
  /**
   * A context left the store (`reason` other than `'replaced'`), or a commit
   * dropped the live resources of the configuration it replaced
   * (`'replaced'`; `resources` names them).
   */
  evicted: {
    readonly userUuid: string;
    readonly reason: ContextEvictionReason;
    /** Scopes still open on the context (its resources wait for them). */
    readonly inFlight: number;
    /** For `'replaced'`: the resources dropped. */
    readonly resources?: readonly ResourceName[];
  };
  /** A token was answered from the verified-token cache. */
  tokenCacheHit: { readonly userUuid: string };
  /** A token was not in the verified-token cache (or its entry had expired) and was verified. */
  tokenCacheMiss: { readonly expired: boolean };
  /** The middleware refused a request's credentials. */
  tokenRejected: {
    /** Error class code, e.g. `ERR_TOKEN_EXPIRED`. */
    readonly code: string;
    /** The `error` of the JSON body, e.g. `token_expired`. */
    readonly error: string;
    readonly status: number;
  };
  /** A live resource was disposed (or its dispose failed: `ok: false`). */
  resourceDisposed: {
    readonly userUuid: string;
    readonly resource: ResourceName;
    readonly ok: boolean;
  };
  /** A helper was called outside any user scope in multi-user mode and threw `UserContextMissingError`. */
  contextMissing: { readonly fn: string };
  /**
   * A request was answered 503 because the shared store (Redis) could not
   * serve its user's context (not a rejected credential: see `tokenRejected`).
   */
  storeUnavailable: { readonly userUuid: string; readonly code: string };
  /** A write that nobody could await (a legacy global's setter) failed; nothing was applied. */
  writeFailed: { readonly userUuid: string | null; readonly where: string; readonly code: string };
}

/** Name of an event. */
export type ContextEventName = keyof ContextEventMap;

/** A listener of one event. */
export type ContextEventListener<K extends ContextEventName> = (event: ContextEventMap[K]) => void;

/** Every event name once; the listener table and `on()`'s check derive from it. */
const EVENT_SET: { readonly [K in ContextEventName]: true } = {
  contextLoaded: true,
  evicted: true,
  tokenCacheHit: true,
  tokenCacheMiss: true,
  tokenRejected: true,
  storeUnavailable: true,
  resourceDisposed: true,
  contextMissing: true,
  writeFailed: true,
};
const NAMES = Object.freeze(Object.keys(EVENT_SET) as ContextEventName[]);

type ListenerTable = { [K in ContextEventName]: ContextEventListener<K>[] };

/**
 * Typed, synchronous event emitter. Listeners run in the order they were
 * added; one that throws is reported once as a process warning
 * (`KUC_LISTENER_FAILED`) and never breaks the request or the store.
 */
export class ContextEvents {
  /** Brand of this class: `instanceof ContextEvents` holds across copies of the package. @internal */
  static readonly kind: string = 'ContextEvents';
  static [Symbol.hasInstance](value: unknown): boolean {
    return isKind(value, this.kind);
  }

  readonly #listeners = Object.fromEntries(NAMES.map((name) => [name, []])) as unknown as ListenerTable;
  #count = 0;

  constructor() {
    stamp(this, new.target);
  }
  #warned = false;

  /** Whether any listener is registered (hot paths test this first). */
  get listening(): boolean {
    return this.#count > 0;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends ContextEventName>(name: K, listener: ContextEventListener<K>): () => void {
    if (!Object.prototype.hasOwnProperty.call(EVENT_SET, name)) throw new TypeError(`Unknown event "${String(name)}"; events are ${NAMES.join(', ')}`);
    if (typeof listener !== 'function') throw new TypeError(`events.on("${name}", listener): listener must be a function`);
    // Copy on write: an emit in progress keeps iterating its own array.
    this.#listeners[name] = [...this.#listeners[name], listener] as ListenerTable[K];
    this.#count++;
    return () => this.off(name, listener);
  }

  /** Removes a listener added with {@link on}; returns whether it was there. */
  off<K extends ContextEventName>(name: K, listener: ContextEventListener<K>): boolean {
    const list = this.#listeners[name] as ContextEventListener<K>[] | undefined;
    const index = list?.indexOf(listener) ?? -1;
    if (index < 0) return false;
    this.#listeners[name] = list!.filter((_, i) => i !== index) as ListenerTable[K];
    this.#count--;
    return true;
  }

  /** Number of listeners of `name`. */
  listenerCount(name: ContextEventName): number {
    return this.#listeners[name].length;
  }

  /** Calls the listeners of `name` with `event`. */
  emit<K extends ContextEventName>(name: K, event: ContextEventMap[K]): void {
    const list = this.#listeners[name] as ContextEventListener<K>[];
    if (list.length === 0) return;
    for (const listener of list) {
      try {
        listener(event);
      } catch (error) {
        this.#report(name, error);
      }
    }
  }

  #report(name: string, error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    const message = error instanceof Error ? error.message : String(error);
    process.emitWarning(
      `A listener of the "${name}" event threw (${message}); listener errors are ignored, and reported once per emitter.`,
      WARNING_TYPE,
      'KUC_LISTENER_FAILED',
    );
  }
}
