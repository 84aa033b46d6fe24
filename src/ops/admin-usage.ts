/**
 * The admin router's usage routes, with a usage meter (`adminRouter({ usage })`):
 *
 *   GET /admin/usage          usage per user, sorted (`sort` = tokens, calls, errors,
 *                             toolCalls, limited, lastCall, userUuid; `order`; `limit`,
 *                             `offset`; `limited=true` for users a limit refused)
 *   GET /admin/usage/:uuid    one user's usage, with the limits that apply to them
 *
 * Counters only: no prompt, answer, key or tool argument is ever recorded.
 *
 * @internal
 * @module
 */
import type { Context } from 'koa';
import type { UsageMeter } from '../usage/meter.js';
import type { UserUsage } from '../usage/types.js';

/** One row of `GET <prefix>/usage`: the user's usage plus the two sums the table sorts on. */
export type AdminUsageRow = UserUsage & { readonly tokens: number; readonly limitedCount: number };

const SORTS = ['tokens', 'calls', 'errors', 'toolCalls', 'limited', 'lastCall', 'userUuid'] as const;
type Sort = (typeof SORTS)[number];
const PARAMS = new Set(['sort', 'order', 'limit', 'offset', 'limited']);
/** Most users a listing reads from the backend. */
const MAX_USERS = 10_000;

type Problem = (status: number, error: string, message: string) => Error;

function toRow(u: UserUsage): AdminUsageRow {
  return { ...u, tokens: u.inputTokens + u.outputTokens, limitedCount: Object.values(u.limited).reduce((s, n) => s + (n ?? 0), 0) };
}

function keyOf(row: AdminUsageRow, sort: Sort): number | string {
  switch (sort) {
    case 'tokens': return row.tokens;
    case 'calls': return row.calls;
    case 'errors': return row.errors;
    case 'toolCalls': return row.toolCalls;
    case 'limited': return row.limitedCount;
    case 'lastCall': return row.lastCallAt ?? '';
    case 'userUuid': return row.userUuid;
  }
}

/** Answers `rest` (the path after the prefix) when it is a usage route; false otherwise. */
export async function usageRoute(
  ctx: Context, rest: string, meter: UsageMeter, maxPageSize: number, parseUser: (raw: string) => string, problem: Problem,
): Promise<boolean> {
  const one = /^\/usage\/([^/]+)$/.exec(rest);
  if (rest !== '/usage' && rest !== '/usage/' && one === null) return false;
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    ctx.set('Allow', 'GET, HEAD');
    throw problem(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; use GET.`);
  }
  if (one !== null) {
    ctx.body = toRow(await meter.read(parseUser(one[1]!)));
    return true;
  }
  const q = ctx.query;
  for (const name of Object.keys(q)) {
    if (!PARAMS.has(name)) throw problem(400, 'invalid_query', `Unknown query parameter "${name}"; allowed: ${[...PARAMS].join(', ')}.`);
    if (Array.isArray(q[name])) throw problem(400, 'invalid_query', `Give "${name}" at most once.`);
  }
  const sort = (q['sort'] as string | undefined) ?? 'tokens';
  if (!(SORTS as readonly string[]).includes(sort)) throw problem(400, 'invalid_query', `"sort" must be one of ${SORTS.join(', ')}.`);
  const order = (q['order'] as string | undefined) ?? (sort === 'userUuid' ? 'asc' : 'desc');
  if (order !== 'asc' && order !== 'desc') throw problem(400, 'invalid_query', '"order" must be "asc" or "desc".');
  const int = (name: string, fallback: number, max: number): number => {
    const raw = q[name] as string | undefined;
    if (raw === undefined) return fallback;
    const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= (name === 'limit' ? 1 : 0) && n <= max)) throw problem(400, 'invalid_query', `"${name}" must be an integer from ${name === 'limit' ? 1 : 0} to ${max}.`);
    return n;
  };
  const limit = int('limit', Math.min(50, maxPageSize), maxPageSize);
  const offset = int('offset', 0, MAX_USERS);
  const limited = q['limited'];
  if (limited !== undefined && limited !== 'true' && limited !== 'false') throw problem(400, 'invalid_query', '"limited" must be "true" or "false".');
  let rows = (await meter.list(MAX_USERS)).map(toRow);
  if (limited !== undefined) rows = rows.filter((r) => (r.limitedCount > 0) === (limited === 'true'));
  const sign = order === 'asc' ? 1 : -1;
  rows.sort((a, b) => {
    const [ka, kb] = [keyOf(a, sort as Sort), keyOf(b, sort as Sort)];
    const c = ka < kb ? -1 : ka > kb ? 1 : 0;
    return c !== 0 ? c * sign : a.userUuid < b.userUuid ? -1 : 1;
  });
  ctx.body = { total: rows.length, offset, limit, sort, order, backend: meter.backend.kind, items: rows.slice(offset, offset + limit) };
  return true;
}
