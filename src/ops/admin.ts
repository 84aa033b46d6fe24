/**
 * The admin router: who is configured to what, live. Mount it after
 * `userContext()` (which authenticates the caller and sets
 * `ctx.state.user`), and let the dashboard page itself through without a
 * token with `passthrough: admin.isPage`:
 *
 * ```ts
 * const admin = adminRouter({ store });
 * app.use(userContext({ store, secret, algorithms: ['HS256'], passthrough: admin.isPage }));
 * app.use(admin);
 * ```
 *
 *   GET    /admin                  the dashboard page (HTML; holds no data)
 *   GET    /admin/contexts         active contexts, paged and filtered
 *   GET    /admin/contexts/:uuid   one context, secrets redacted
 *   DELETE /admin/contexts/:uuid   delete it: from this process, and with a shared store from Redis
 *                                  and every instance (resources disposed once no request holds them)
 *   GET    /admin/usage[/:uuid]    with `usage`: usage per user, sortable (see admin-usage.ts)
 *
 * Every data route needs an admin: 401 without credentials, 403 for a
 * caller that is not one.
 *
 * @module
 */
import type { Context, Next } from 'koa';
import { renderDashboard } from './admin-page.js';
import { RESOURCE_NAMES } from '../context/fields.js';
import { redactContext } from '../context/redact.js';
import { type ResourceName } from '../context/types.js';
import { getDefaultStore } from '../store/default-store.js';
import { ContextStoreUnavailableError, UserContextError } from '../errors.js';
import type { Generation } from '../store/generation.js';
import type { ContextStore, UserEntry } from '../store/store.js';
import type { UsageMeter } from '../usage/meter.js';
import { usageRoute } from './admin-usage.js';

/** Decides whether the caller is an admin, from its verified claims. */
export type AdminPredicate = (
  claims: Readonly<Record<string, unknown>>,
  ctx: Context,
) => boolean | Promise<boolean>;

/** Options of {@link adminRouter}. */
export interface AdminRouterOptions {
  /**
   * Store whose contexts are shown.
   * @default the default store
   */
  store?: ContextStore;
  /**
   * Path prefix of every route (no trailing slash).
   * @default '/admin'
   */
  prefix?: string;
  /**
   * Who is an admin.
   * @default claims.role === 'admin' or claims.roles (an array) containing 'admin'
   */
  isAdmin?: AdminPredicate;
  /**
   * `ctx.state` key holding the verified claims.
   * @default 'user' (where `userContext()` puts them)
   */
  stateKey?: string;
  /**
   * Serve the dashboard page at `GET <prefix>`.
   * @default true
   */
  dashboard?: boolean;
  /**
   * How often (ms) the dashboard refreshes its table.
   * @default 5000
   */
  refreshInterval?: number;
  /**
   * Largest `limit` a list request may ask for.
   * @default 500
   */
  maxPageSize?: number;
  /**
   * Further keys (at any depth) to redact in `GET <prefix>/contexts/:uuid`,
   * on top of every name `isCredentialName()` matches (`key`, `apiKey`,
   * `token`, `secret`, `password`, `privateKey`, `pat`, `Authorization`, …).
   * @default []
   */
  secretKeys?: readonly string[];
  /** A usage meter (koa-user-context/usage): serves `GET <prefix>/usage` and the dashboard's usage table. @default undefined */
  usage?: UsageMeter;
}

/** The router middleware, plus the predicate to give `userContext({ passthrough })`. */
export interface AdminRouter {
  (ctx: Context, next: Next): Promise<void>;
  /** True for `GET`/`HEAD` of the dashboard page, the one route needing no token. */
  readonly isPage: (ctx: Context) => boolean;
  readonly prefix: string;
}

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

class HttpProblem extends Error {
  constructor(readonly status: number, readonly error: string, message: string) {
    super(message);
  }
}

const SORTS = ['lastAccess', 'userUuid', 'expiresIn', 'inFlight', 'provider', 'model'] as const;
type Sort = (typeof SORTS)[number];
const LIST_PARAMS = new Set(['limit', 'offset', 'q', 'provider', 'model', 'mcpServer', 'inFlight', 'sort', 'order']);
const PREFIX_SHAPE = /^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]*[^/]$/;

/** The default admin check: `role: "admin"` or `roles` containing `"admin"`. */
export function hasAdminRole(claims: Readonly<Record<string, unknown>>): boolean {
  const roles = claims['roles'];
  return claims['role'] === 'admin' || (Array.isArray(roles) && roles.includes('admin'));
}

/** Creates the admin router; see the module documentation. */
export function adminRouter(options: AdminRouterOptions = {}): AdminRouter {
  if (options === null || typeof options !== 'object') throw new TypeError('adminRouter(options): options must be an object');
  const {
    prefix = '/admin',
    isAdmin = hasAdminRole,
    stateKey = 'user',
    dashboard = true,
    refreshInterval = 5000,
    maxPageSize = 500,
    secretKeys = [],
  } = options;
  if (typeof prefix !== 'string' || !PREFIX_SHAPE.test(prefix) || prefix.includes('//')) {
    throw new TypeError(`options.prefix must be a path such as '/admin' (leading slash, no trailing slash), got ${JSON.stringify(prefix)}`);
  }
  if (typeof isAdmin !== 'function') throw new TypeError('options.isAdmin must be a function (claims, ctx) => boolean');
  if (typeof stateKey !== 'string' || stateKey === '') throw new TypeError('options.stateKey must be a non-empty string');
  if (typeof dashboard !== 'boolean') throw new TypeError('options.dashboard must be a boolean');
  if (!Number.isInteger(refreshInterval) || refreshInterval < 1000) {
    throw new TypeError('options.refreshInterval must be an integer number of milliseconds >= 1000');
  }
  if (!Number.isInteger(maxPageSize) || maxPageSize < 1) throw new TypeError('options.maxPageSize must be a positive integer');
  if (!Array.isArray(secretKeys) || secretKeys.some((k) => typeof k !== 'string' || k === '')) {
    throw new TypeError('options.secretKeys must be an array of key names');
  }
  const { usage } = options;
  if (usage !== undefined && typeof usage?.list !== 'function') throw new TypeError('options.usage must be a usage meter: createUsageMeter() from koa-user-context/usage');
  const store = options.store ?? getDefaultStore();
  const page = dashboard ? renderDashboard(prefix, refreshInterval, usage !== undefined) : undefined;
  const keys = [...secretKeys];
  const under = `${prefix}/`;

  function isPage(ctx: Context): boolean {
    return page !== undefined && (ctx.method === 'GET' || ctx.method === 'HEAD') && (ctx.path === prefix || ctx.path === under);
  }

  async function requireAdmin(ctx: Context): Promise<void> {
    const claims: unknown = ctx.state[stateKey];
    if (claims === null || typeof claims !== 'object') {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new HttpProblem(401, 'missing_token', 'Send an admin token as "Authorization: Bearer <token>".');
    }
    if ((await isAdmin(claims as Readonly<Record<string, unknown>>, ctx)) !== true) {
      throw new HttpProblem(
        403,
        'forbidden',
        'This token does not grant admin access: its claims need role "admin" (or roles containing "admin").',
      );
    }
  }

  function parseUser(raw: string): string {
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      throw new HttpProblem(400, 'invalid_user_id', 'The user id in the path is not valid percent-encoding.');
    }
    try {
      return store.parseUserId(decoded);
    } catch (error) {
      if (error instanceof UserContextError) throw new HttpProblem(400, 'invalid_user_id', error.message);
      throw error;
    }
  }

  function list(ctx: Context): void {
    const query = parseListQuery(ctx.query, maxPageSize);
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
    ctx.body = {
      total: matched.length,
      offset: query.offset,
      limit: query.limit,
      size: store.size,
      max: store.max,
      ttlMs: store.ttl > 0 ? store.ttl : null,
      requestsInFlight: store.scopesInFlight,
      viewer: typeof ctx.state['userUuid'] === 'string' ? ctx.state['userUuid'] : null,
      items: matched.slice(query.offset, query.offset + query.limit).map((m) => toRow(m.entry)),
    };
  }

  function detail(ctx: Context, userUuid: string): void {
    const entry = store.inspect(userUuid);
    const view = store.peek(userUuid);
    if (entry === undefined || view === undefined) {
      throw new HttpProblem(404, 'context_not_found', `No active context for user ${userUuid}; it may have been evicted.`);
    }
    ctx.body = { ...toRow(entry), context: redactContext(view, { secretKeys: keys }) };
  }

  /** Deletes the context wherever the store keeps it (a shared store: Redis and every instance's near-cache). */
  async function evict(ctx: Context, userUuid: string): Promise<void> {
    const entry = store.inspect(userUuid);
    if (!(await store.deleteContext(userUuid))) {
      throw new HttpProblem(404, 'context_not_found', `No active context for user ${userUuid}; nothing to evict.`);
    }
    const inFlight = entry?.inFlight ?? 0;
    ctx.body = {
      evicted: true,
      userUuid,
      inFlight,
      message: inFlight > 0
        ? `Evicted; its resources are disposed when its ${inFlight} request(s) in flight end.`
        : 'Evicted; its resources are being disposed.',
    };
  }

  async function route(ctx: Context): Promise<void> {
    if (isPage(ctx)) {
      ctx.set('Content-Security-Policy', page!.csp);
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('Referrer-Policy', 'no-referrer');
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = page!.html;
      return;
    }
    await requireAdmin(ctx);
    const rest = ctx.path.slice(prefix.length);
    if (rest === '' || rest === '/') {
      if (page === undefined) throw new HttpProblem(404, 'not_found', `The dashboard is turned off; use ${prefix}/contexts.`);
      return methodNotAllowed(ctx, 'GET, HEAD');
    }
    if (rest === '/contexts' || rest === '/contexts/') {
      if (ctx.method === 'GET' || ctx.method === 'HEAD') return list(ctx);
      return methodNotAllowed(ctx, 'GET, HEAD');
    }
    if (usage !== undefined && (await usageRoute(ctx, rest, usage, maxPageSize, parseUser, (...a) => new HttpProblem(...a)))) return;
    const match = /^\/contexts\/([^/]+)$/.exec(rest);
    if (match === null) {
      throw new HttpProblem(404, 'not_found', `No admin route ${ctx.method} ${ctx.path}; see ${prefix}/contexts.`);
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD' && ctx.method !== 'DELETE') {
      return methodNotAllowed(ctx, 'GET, HEAD, DELETE');
    }
    const userUuid = parseUser(match[1]!);
    if (ctx.method === 'DELETE') return evict(ctx, userUuid);
    return detail(ctx, userUuid);
  }

  // Not async: every request of the app passes here, and all but the admin's go straight on.
  function adminRouterMiddleware(ctx: Context, next: Next): Promise<void> {
    const path = ctx.path;
    if (path !== prefix && !path.startsWith(under)) return next();
    return serve(ctx);
  }

  async function serve(ctx: Context): Promise<void> {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('X-Content-Type-Options', 'nosniff');
    try {
      await route(ctx);
    } catch (error) {
      if (error instanceof ContextStoreUnavailableError) {
        ctx.status = 503;
        ctx.set('Retry-After', '5');
        ctx.body = { error: ContextStoreUnavailableError.error, message: error.message };
        return;
      }
      if (!(error instanceof HttpProblem)) throw error;
      ctx.status = error.status;
      ctx.body = { error: error.error, message: error.message };
    }
  }

  return Object.defineProperties(adminRouterMiddleware, {
    isPage: { value: isPage, enumerable: true },
    prefix: { value: prefix, enumerable: true },
  }) as AdminRouter;
}

function methodNotAllowed(ctx: Context, allow: string): void {
  ctx.set('Allow', allow);
  throw new HttpProblem(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; use ${allow}.`);
}

type InspectedEntry = Readonly<UserEntry> & { remainingTtl: number };

/** An entry being listed, with the fields filters and sorts look at. */
interface Listed {
  entry: InspectedEntry;
  userUuid: string;
  provider: string | null;
  model: string | null;
  mcpServerName: string | null;
  mcpServerId: string | null;
}

function toRow(entry: InspectedEntry): AdminContextRow {
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

interface ListQuery {
  limit: number;
  offset: number;
  q: string | undefined;
  provider: string | undefined;
  model: string | undefined;
  mcpServer: string | undefined;
  inFlight: boolean | undefined;
  sort: Sort;
  order: 'asc' | 'desc';
}

function parseListQuery(raw: Record<string, string | string[] | undefined>, maxPageSize: number): ListQuery {
  const one = (name: string): string | undefined => {
    const value = raw[name];
    if (Array.isArray(value)) throw new HttpProblem(400, 'invalid_query', `Give "${name}" at most once.`);
    return value;
  };
  for (const name of Object.keys(raw)) {
    if (!LIST_PARAMS.has(name)) {
      throw new HttpProblem(400, 'invalid_query', `Unknown query parameter "${name}"; allowed: ${[...LIST_PARAMS].join(', ')}.`);
    }
  }
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const value = one(name);
    if (value === undefined) return fallback;
    const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) {
      throw new HttpProblem(400, 'invalid_query', `"${name}" must be an integer from ${min} to ${max}, got "${value.slice(0, 40)}".`);
    }
    return n;
  };
  const text = (name: string): string | undefined => {
    const value = one(name);
    if (value === undefined || value === '') return undefined;
    if (value.length > 200) throw new HttpProblem(400, 'invalid_query', `"${name}" must be at most 200 characters.`);
    return value;
  };
  const sort = one('sort') ?? 'lastAccess';
  if (!(SORTS as readonly string[]).includes(sort)) {
    throw new HttpProblem(400, 'invalid_query', `"sort" must be one of ${SORTS.join(', ')}.`);
  }
  const order = one('order') ?? (sort === 'lastAccess' || sort === 'inFlight' ? 'desc' : 'asc');
  if (order !== 'asc' && order !== 'desc') throw new HttpProblem(400, 'invalid_query', '"order" must be "asc" or "desc".');
  const inFlight = one('inFlight');
  if (inFlight !== undefined && inFlight !== 'true' && inFlight !== 'false') {
    throw new HttpProblem(400, 'invalid_query', '"inFlight" must be "true" (only contexts with requests in flight) or "false".');
  }
  return {
    limit: int('limit', Math.min(50, maxPageSize), 1, maxPageSize),
    offset: int('offset', 0, 0, 1_000_000_000),
    q: text('q')?.toLowerCase(),
    provider: text('provider'),
    model: text('model'),
    mcpServer: text('mcpServer'),
    inFlight: inFlight === undefined ? undefined : inFlight === 'true',
    sort: sort as Sort,
    order,
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
  const sign = order === 'asc' ? 1 : -1;
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    const c = ka < kb ? -1 : ka > kb ? 1 : 0;
    // Ties broken by user id, so pages are stable between identical listings.
    return c !== 0 ? c * sign : a.userUuid < b.userUuid ? -1 : a.userUuid > b.userUuid ? 1 : 0;
  };
}
