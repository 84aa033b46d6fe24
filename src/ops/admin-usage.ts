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
import { byKey, HttpProblem, invalid, parsePageQuery } from './admin-query.js';

/** One row of `GET <prefix>/usage`: the user's usage plus the two sums the table sorts on. */
export type AdminUsageRow = UserUsage & { readonly tokens: number; readonly limitedCount: number };

const SORTS = ['tokens', 'calls', 'errors', 'toolCalls', 'limited', 'lastCall', 'userUuid'] as const;
type Sort = (typeof SORTS)[number];
const PARAMS = new Set(['sort', 'order', 'limit', 'offset', 'limited']);
/** Most users a listing reads from the backend. */
const MAX_USERS = 10_000;

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
  ctx: Context, rest: string, meter: UsageMeter, maxPageSize: number, parseUser: (raw: string) => string,
): Promise<boolean> {
  const one = /^\/usage\/([^/]+)$/.exec(rest);
  if (rest !== '/usage' && rest !== '/usage/' && one === null) return false;
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    ctx.set('Allow', 'GET, HEAD');
    throw new HttpProblem(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; use GET.`);
  }
  if (one !== null) {
    ctx.body = toRow(await meter.read(parseUser(one[1]!)));
    return true;
  }
  const page = parsePageQuery<Sort>(ctx.query, {
    params: PARAMS, sorts: SORTS, defaultSort: 'tokens', defaultOrder: (sort) => (sort === 'userUuid' ? 'asc' : 'desc'), maxPageSize, maxOffset: MAX_USERS,
  });
  const limited = page.one('limited');
  if (limited !== undefined && limited !== 'true' && limited !== 'false') throw invalid('"limited" must be "true" or "false".');
  let rows = (await meter.list(MAX_USERS)).map(toRow);
  if (limited !== undefined) rows = rows.filter((r) => (r.limitedCount > 0) === (limited === 'true'));
  rows.sort(byKey((row) => keyOf(row, page.sort), page.order));
  const { sort, order, offset, limit } = page;
  ctx.body = { total: rows.length, offset, limit, sort, order, backend: meter.backend.kind, items: rows.slice(offset, offset + limit) };
  return true;
}
