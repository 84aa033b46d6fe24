/**
 * Identity checks that hold across two copies of the package in one process
 * (an ESM and a CJS copy, or a duplicated dependency): classes that other
 * copies may meet (stores, event emitters, profile scopes) stamp their
 * instances with the names of their class chain under a registered symbol,
 * and answer `instanceof` from that stamp instead of from the prototype.
 * Errors are stamped the same way, with the codes of their class chain.
 *
 * @internal
 * @module
 */

const KINDS = Symbol.for('koa-user-context.kinds.v1');

/** The kinds of each class, computed once per class. */
const kindsOf = new WeakMap<object, readonly string[]>();

/**
 * Stamps `instance` with the kinds of `cls` and its branded ancestors: the
 * value of their static `key` (`kind` for stores and emitters, `code` for
 * errors), walking up the class chain while the ancestors have one.
 */
export function stamp(instance: object, cls: object, key: 'kind' | 'code' = 'kind'): void {
  let kinds = kindsOf.get(cls);
  if (kinds === undefined) {
    const found: string[] = [];
    for (let c = cls as Record<string, unknown> | null; typeof c?.[key] === 'string'; c = Object.getPrototypeOf(c) as Record<string, unknown> | null) {
      const kind = c[key] as string;
      if (!found.includes(kind)) found.push(kind);
    }
    kinds = Object.freeze(found);
    kindsOf.set(cls, kinds);
  }
  Object.defineProperty(instance, KINDS, { value: kinds });
}

/** Whether `value` was stamped with `kind` (by any copy of the package). */
export function isKind(value: unknown, kind: string): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const kinds = (value as { [KINDS]?: readonly string[] })[KINDS];
  return kinds !== undefined && kinds.includes(kind);
}
