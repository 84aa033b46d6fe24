/**
 * Identity checks that hold across two copies of the package in one process
 * (an ESM and a CJS copy, or a duplicated dependency): classes that other
 * copies may meet (stores, event emitters, profile scopes) stamp their
 * instances with the names of their class chain under a registered symbol,
 * and answer `instanceof` from that stamp instead of from the prototype.
 *
 * @internal
 * @module
 */

const KINDS = Symbol.for('koa-user-context.kinds.v1');

/** A class that can be branded: it names its kind in a static `kind`. */
export interface Branded {
  readonly kind: string;
}

/** Stamps `instance` with the kinds of `cls` and its branded ancestors. */
export function stamp(instance: object, cls: Partial<Branded>): void {
  const kinds: string[] = [];
  for (let c: Partial<Branded> | null = cls; c?.kind !== undefined; c = Object.getPrototypeOf(c) as Partial<Branded> | null) {
    if (!kinds.includes(c.kind)) kinds.push(c.kind);
  }
  Object.defineProperty(instance, KINDS, { value: Object.freeze(kinds), configurable: false });
}

/** Whether `value` was stamped with `kind` (by any copy of the package). */
export function isKind(value: unknown, kind: string): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const kinds = (value as { [KINDS]?: readonly string[] })[KINDS];
  return kinds !== undefined && kinds.includes(kind);
}
