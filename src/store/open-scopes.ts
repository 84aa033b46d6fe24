/**
 * The scopes open on a store, as an intrusive doubly linked list (no hashing
 * on the request path), so `close()` can wait for them and then close the
 * ones still open, oldest first.
 *
 * @internal
 * @module
 */
import type { Scope } from './scope.js';

export class OpenScopes {
  #head: Scope | undefined;
  #count = 0;
  #drained: (() => void) | undefined;

  /** Unlinks a closed scope (passed to every scope as its close hook). */
  readonly unlink = (scope: Scope): void => {
    const { prevOpen, nextOpen } = scope;
    if (prevOpen !== undefined) prevOpen.nextOpen = nextOpen;
    else this.#head = nextOpen;
    if (nextOpen !== undefined) nextOpen.prevOpen = prevOpen;
    scope.prevOpen = scope.nextOpen = undefined;
    if (--this.#count === 0) this.#drained?.();
  };

  /** Number of open scopes. */
  get size(): number {
    return this.#count;
  }

  /** Links a newly opened scope. */
  add<S extends Scope>(scope: S): S {
    const head = this.#head;
    scope.nextOpen = head;
    if (head !== undefined) head.prevOpen = scope;
    this.#head = scope;
    this.#count++;
    return scope;
  }

  /** Resolves when no scope is open, or after `timeout` ms. */
  async drain(timeout: number): Promise<void> {
    if (this.#count === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#drained = resolve;
      timer = setTimeout(resolve, timeout);
      timer.unref();
    });
    clearTimeout(timer);
  }

  /** Closes the scopes still open, oldest first (they lose their lease now). */
  closeAll(): void {
    const open: Scope[] = [];
    for (let scope = this.#head; scope !== undefined; scope = scope.nextOpen) open.push(scope);
    for (const scope of open.reverse()) scope.close();
  }
}
