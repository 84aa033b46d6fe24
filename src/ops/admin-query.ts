/**
 * What the admin routes share: the error they answer with, and the rules of a
 * paged, sorted listing's query string (`limit`, `offset`, `sort`, `order`,
 * unknown or repeated parameters refused), so `GET <prefix>/contexts` and
 * `GET <prefix>/usage` refuse the same mistakes with the same messages.
 *
 * @internal
 * @module
 */

/** An admin route's refusal: answered with `status` and `{ error, message }`. */
export class HttpProblem extends Error {
  constructor(readonly status: number, readonly error: string, message: string) {
    super(message);
  }
}

/** A listing's query string, checked. */
export interface PageQuery<S extends string> {
  readonly limit: number;
  readonly offset: number;
  readonly sort: S;
  readonly order: 'asc' | 'desc';
  /** A listing's own parameter, given at most once (`undefined` when absent). */
  one(name: string): string | undefined;
}

/** What a listing accepts. */
export interface PageQuerySpec<S extends string> {
  /** Every parameter the listing takes, `limit`, `offset`, `sort` and `order` included. */
  readonly params: ReadonlySet<string>;
  readonly sorts: readonly S[];
  readonly defaultSort: S;
  /** The order when none is given, for a sort. */
  defaultOrder(sort: S): 'asc' | 'desc';
  readonly maxPageSize: number;
  readonly maxOffset: number;
}

/** Checks the paging and sorting of `raw` (Koa's `ctx.query`); throws a 400 `invalid_query` saying what to fix. */
export function parsePageQuery<S extends string>(raw: Record<string, string | string[] | undefined>, spec: PageQuerySpec<S>): PageQuery<S> {
  for (const name of Object.keys(raw)) {
    if (!spec.params.has(name)) throw invalid(`Unknown query parameter "${name}"; allowed: ${[...spec.params].join(', ')}.`);
  }
  const one = (name: string): string | undefined => {
    const value = raw[name];
    if (Array.isArray(value)) throw invalid(`Give "${name}" at most once.`);
    return value;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const value = one(name);
    if (value === undefined) return fallback;
    const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw invalid(`"${name}" must be an integer from ${min} to ${max}, got "${value.slice(0, 40)}".`);
    return n;
  };
  const sort = one('sort') ?? spec.defaultSort;
  if (!(spec.sorts as readonly string[]).includes(sort)) throw invalid(`"sort" must be one of ${spec.sorts.join(', ')}.`);
  const order = one('order') ?? spec.defaultOrder(sort as S);
  if (order !== 'asc' && order !== 'desc') throw invalid('"order" must be "asc" or "desc".');
  return {
    limit: int('limit', Math.min(50, spec.maxPageSize), 1, spec.maxPageSize),
    offset: int('offset', 0, 0, spec.maxOffset),
    sort: sort as S,
    order,
    one,
  };
}

/** A 400 `invalid_query`. */
export function invalid(message: string): HttpProblem {
  return new HttpProblem(400, 'invalid_query', message);
}

/** Orders rows by `key` in `order`; ties broken by user id, so pages are stable between identical listings. */
export function byKey<T extends { readonly userUuid: string }>(key: (row: T) => number | string, order: 'asc' | 'desc'): (a: T, b: T) => number {
  const sign = order === 'asc' ? 1 : -1;
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    const c = ka < kb ? -1 : ka > kb ? 1 : 0;
    return c !== 0 ? c * sign : a.userUuid < b.userUuid ? -1 : a.userUuid > b.userUuid ? 1 : 0;
  };
}
