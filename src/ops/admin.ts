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
import { redactContext } from '../context/redact.js';
import { getDefaultStore } from '../store/default-store.js';
import { ContextStoreUnavailableError, UserContextError } from '../errors.js';
import type { ContextStore } from '../store/store.js';
import type { UsageMeter } from '../usage/meter.js';
import { contextsPage, toRow } from './admin-contexts.js';
import { HttpProblem } from './admin-query.js';
import { usageRoute } from './admin-usage.js';

export type { AdminContextRow } from './admin-contexts.js';

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
    ctx.body = contextsPage(store, ctx.query, maxPageSize, typeof ctx.state['userUuid'] === 'string' ? ctx.state['userUuid'] : null);
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
    if (usage !== undefined && (await usageRoute(ctx, rest, usage, maxPageSize, parseUser))) return;
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
