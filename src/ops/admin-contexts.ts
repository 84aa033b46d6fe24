/**
 * `GET <prefix>/contexts` of the admin router: the active contexts, filtered
 * (`q`, `provider`, `model`, `mcpServer`, `inFlight`), sorted and paged, one
 * row per user with what it is configured to and which live resources it
 * holds (never a credential).
 *
 * @internal
 * @module
 */
import { RESOURCE_NAMES } from '../context/fields.js';
import type { ResourceName } from '../context/types.js';
import type { Generation } from '../store/generation.js';
import type { ContextStore, UserEntry } from '../store/store.js';
import { byKey, invalid, parsePageQuery, type PageQuery } from './admin-query.js';

/** One row of `GET <prefix>/contexts`. */
export interface AdminContextRow {
  userUuid: string;
  provider: string | null;
  model: string | null;
  mcpServerName: string | null;
  mcpServerId: string | null;
  /** ISO time of the last request or explicit access. */
  lastAccess: string;
  /** Milliseconds until inactivity eviction; `null` when the store has no TTL. */
  expiresInMs: number | null;
  /** Scopes (requests, `runAsUser` calls) open on the context. */
  inFlight: number;
  /** Version of the current configuration. */
  version: number;
  /** Which live resources the current configuration holds. */
  resources: Record<ResourceName, boolean>;
}

const SORTS = ['lastAccess', 'userUuid', 'expiresIn', 'inFlight', 'provider', 'model'] as const;
type Sort = (typeof SORTS)[number];
const LIST_PARAMS = new Set(['limit', 'offset', 'q', 'provider', 'model', 'mcpServer', 'inFlight', 'sort', 'order']);

/** The body of `GET <prefix>/contexts` for query string `raw`; `viewer` is the admin asking. */
export function contextsPage(store: ContextStore, raw: Record<string, string | string[] | undefined>, maxPageSize: number, viewer: string | null): Record<string, unknown> {
  const query = parseListQuery(raw, maxPageSize);
  // Filter and sort on the raw entries; build rows for the page only.
  const matched: Listed[] = [];
  for (const entry of store.entries()) {
    const c = entry.current.config;
    const item: Listed = {
      entry,
      userUuid: entry.userUuid,
      provider: stringOrNull(c.provider),
      model: stringOrNull(c.model),
      mcpServerName: stringOrNull(c.mcpServerName),
      mcpServerId: stringOrNull(c.mcpServerId),
    };
    if (matches(item, query)) matched.push(item);
  }
  matched.sort(comparator(query.sort, query.order));
  return {
    total: matched.length,
    offset: query.offset,
    limit: query.limit,
    size: store.size,
    max: store.max,
    ttlMs: store.ttl > 0 ? store.ttl : null,
    requestsInFlight: store.scopesInFlight,
    viewer,
    items: matched.slice(query.offset, query.offset + query.limit).map((m) => toRow(m.entry)),
  };
}

/** An entry as `store.inspect()` and `store.entries()` give it. */
export type InspectedEntry = Readonly<UserEntry> & { remainingTtl: number };

/** An entry being listed, with the fields filters and sorts look at. */
interface Listed {
  entry: InspectedEntry;
  userUuid: string;
  provider: string | null;
  model: string | null;
  mcpServerName: string | null;
  mcpServerId: string | null;
}

/** One context's row (also the head of `GET <prefix>/contexts/:uuid`). */
export function toRow(entry: InspectedEntry): AdminContextRow {
  const gen: Generation = entry.current;
  const resources = {} as Record<ResourceName, boolean>;
  for (const name of RESOURCE_NAMES) {
    const r = gen.resources.get(name);
    resources[name] = r !== undefined && !r.disposed && r.value != null;
  }
  const remaining = entry.remainingTtl;
  return {
    userUuid: entry.userUuid,
    provider: stringOrNull(gen.config.provider),
    model: stringOrNull(gen.config.model),
    mcpServerName: stringOrNull(gen.config.mcpServerName),
    mcpServerId: stringOrNull(gen.config.mcpServerId),
    lastAccess: new Date(entry.lastAccess).toISOString(),
    expiresInMs: Number.isFinite(remaining) ? Math.max(0, Math.round(remaining)) : null,
    inFlight: entry.inFlight,
    version: gen.version,
    resources,
  };
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : value == null ? null : String(value);
}

interface ListQuery extends PageQuery<Sort> {
  q: string | undefined;
  provider: string | undefined;
  model: string | undefined;
  mcpServer: string | undefined;
  inFlight: boolean | undefined;
}

function parseListQuery(raw: Record<string, string | string[] | undefined>, maxPageSize: number): ListQuery {
  const page = parsePageQuery<Sort>(raw, {
    params: LIST_PARAMS, sorts: SORTS, defaultSort: 'lastAccess',
    defaultOrder: (sort) => (sort === 'lastAccess' || sort === 'inFlight' ? 'desc' : 'asc'), maxPageSize, maxOffset: 1_000_000_000,
  });
  const text = (name: string): string | undefined => {
    const value = page.one(name);
    if (value === undefined || value === '') return undefined;
    if (value.length > 200) throw invalid(`"${name}" must be at most 200 characters.`);
    return value;
  };
  const inFlight = page.one('inFlight');
  if (inFlight !== undefined && inFlight !== 'true' && inFlight !== 'false') {
    throw invalid('"inFlight" must be "true" (only contexts with requests in flight) or "false".');
  }
  return {
    ...page,
    q: text('q')?.toLowerCase(),
    provider: text('provider'),
    model: text('model'),
    mcpServer: text('mcpServer'),
    inFlight: inFlight === undefined ? undefined : inFlight === 'true',
  };
}

function matches(row: Listed, q: ListQuery): boolean {
  if (q.provider !== undefined && row.provider !== q.provider) return false;
  if (q.model !== undefined && row.model !== q.model) return false;
  if (q.mcpServer !== undefined && row.mcpServerName !== q.mcpServer && row.mcpServerId !== q.mcpServer) return false;
  if (q.inFlight !== undefined && row.entry.inFlight > 0 !== q.inFlight) return false;
  if (q.q !== undefined) {
    const hay = [row.userUuid, row.provider, row.model, row.mcpServerName, row.mcpServerId];
    if (!hay.some((v) => v !== null && v.toLowerCase().includes(q.q!))) return false;
  }
  return true;
}

function comparator(sort: Sort, order: 'asc' | 'desc'): (a: Listed, b: Listed) => number {
  const key = (r: Listed): number | string => {
    switch (sort) {
      case 'lastAccess': return r.entry.lastAccess;
      case 'userUuid': return r.userUuid;
      case 'expiresIn': return r.entry.remainingTtl;
      case 'inFlight': return r.entry.inFlight;
      case 'provider': return r.provider ?? '';
      case 'model': return r.model ?? '';
    }
  };
  return byKey(key, order);
}
