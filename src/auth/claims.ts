/**
 * Verified claims: deep-frozen where they are shared (the token cache, the
 * scope, `currentUserClaims()`), and a request's own deep copy for
 * `ctx.state.user`, as koa-jwt's fresh decode per request gives. Flat claims
 * cost one spread per copy; nested ones (`roles`, `realm_access`, …) a spread
 * or slice per object or array, planned once per cached token.
 *
 * @module
 */

/**
 * Deep-freezes verified claims (decoded JSON) and returns them. `twin`: also
 * keep an unfrozen twin and a copier for their shape, for claims copied
 * again and again (cached).
 */
export function freezeClaims<T extends Record<string, unknown>>(claims: T, twin: boolean): Readonly<T> {
  if (twin) {
    const copy = copierOf(claims)!;
    mutableTwins.set(claims, { twin: copy(claims) as Record<string, unknown>, copy });
  }
  return deepFreeze(claims);
}

/**
 * What a request's own copy of cached claims is made from: their unfrozen
 * deep twin and a copier planned once for its shape (flat claims: one
 * spread; nested roles and scopes: a spread or slice per object or array).
 */
interface ClaimsTwin {
  readonly twin: Readonly<Record<string, unknown>>;
  readonly copy: Copier;
}

/** Verified (frozen) claims → their {@link ClaimsTwin}, never handed out itself. */
const mutableTwins = new WeakMap<object, ClaimsTwin>();

/**
 * A new, mutable, deep copy of verified claims (for `ctx.state.user`), nested
 * roles and scopes included: the same data as `structuredClone(claims)`. From
 * the claims' unfrozen twin when they came from this module's cache
 * (spreading a frozen object takes V8's slow path).
 */
export function mutableClaims(claims: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const twin = mutableTwins.get(claims);
  if (twin === undefined) return copierOf(claims)!(claims) as Record<string, unknown>;
  return twin.copy(twin.twin) as Record<string, unknown>;
}

/** Copies a decoded JSON value of one shape. */
type Copier = (value: any) => unknown;

const sliceArray: Copier = (value: unknown[]) => value.slice();
const spreadObject: Copier = (value: object) => ({ ...value });

/**
 * A copier of decoded JSON (a token's payload) of the shape of `value`, or
 * `undefined` for a primitive (kept as it is): a mutable deep copy, which
 * only walks the parts that hold objects or arrays.
 */
function copierOf(value: unknown): Copier | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    const items = value.map((item: unknown) => copierOf(item));
    if (items.every((item) => item === undefined)) return sliceArray;
    return (array: unknown[]) => array.map((item, i) => (items[i] === undefined ? item : items[i]!(item)));
  }
  const nested: Array<[string, Copier]> = [];
  for (const key of Object.keys(value)) {
    const copier = copierOf((value as Record<string, unknown>)[key]);
    if (copier !== undefined) nested.push([key, copier]);
  }
  if (nested.length === 0) return spreadObject;
  return (object: Record<string, unknown>) => {
    const out: Record<string, unknown> = { ...object };
    for (const [key, copier] of nested) {
      const copy = copier(object[key]);
      // A JSON key "__proto__" is an own property, not the prototype.
      if (key === '__proto__') Object.defineProperty(out, key, { value: copy, writable: true, enumerable: true, configurable: true });
      else out[key] = copy;
    }
    return out;
  };
}

/** Freezes decoded JSON (a token's payload) and everything in it. */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}
