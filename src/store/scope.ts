/**
 * A user scope: one request (or one `runAsUser` call) of one user. It holds a
 * lease on the generation it reads, so the resources it may be using are not
 * disposed under it, and it moves to a newer generation only through its own
 * writes: a request sees a stable snapshot plus its own changes.
 *
 * @module
 */
import type { Generation } from './generation.js';
import type { ContextStore, UserEntry } from './store.js';

export class Scope {
  readonly userUuid: string;
  readonly store: ContextStore;
  /** Claims of the verified token, when the scope comes from the middleware. */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** The entry the scope was opened on (counts its requests in flight). */
  readonly entry: UserEntry;
  /** The generation this scope reads: its snapshot. */
  gen: Generation;
  /** The scope this one is nested in (a profile override), if any. */
  readonly parent: Scope | undefined;
  /** Neighbours in the store's list of open scopes. @internal */
  prevOpen: Scope | undefined = undefined;
  /** @internal */
  nextOpen: Scope | undefined = undefined;
  #open = true;
  readonly #onClose: (scope: Scope) => void;
  #signal: AbortSignal | undefined;
  #signalSource: (() => AbortSignal) | undefined;

  constructor(
    store: ContextStore,
    entry: UserEntry,
    claims: Readonly<Record<string, unknown>> | undefined,
    onClose: (scope: Scope) => void,
    gen: Generation = entry.current,
    parent?: Scope,
  ) {
    this.userUuid = entry.userUuid;
    this.store = store;
    this.entry = entry;
    this.claims = claims;
    this.parent = parent;
    this.gen = gen;
    this.gen.lease();
    entry.inFlight++;
    this.#onClose = onClose;
  }

  get open(): boolean {
    return this.#open;
  }

  /**
   * The abort signal of the work this scope runs (the HTTP request, for the
   * middleware), created on first use; inherited by nested scopes.
   */
  get signal(): AbortSignal | undefined {
    if (this.#signal === undefined && this.#signalSource !== undefined) {
      this.#signal = this.#signalSource();
      this.#signalSource = undefined;
    }
    return this.#signal ?? this.parent?.signal;
  }

  /** Sets where `signal` comes from (called once, lazily). @internal */
  setSignalSource(source: (() => AbortSignal) | AbortSignal): void {
    if (typeof source === 'function') this.#signalSource = source;
    else this.#signal = source;
  }

  /** Moves this scope's lease to a newer generation (after its own write). */
  moveTo(gen: Generation): void {
    if (gen === this.gen) return;
    const old = this.gen;
    gen.lease();
    this.gen = gen;
    old.unlease();
  }

  /** Ends the scope; releases its lease. Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.entry.inFlight--;
    this.gen.unlease();
    this.#onClose(this);
  }
}
