/**
 * The Koa middleware: authenticate the request, take the user id from the
 * token, and run the rest of the request inside that user's scope.
 *
 * @module
 */
import type { Context, Middleware, Next } from 'koa';
import koaUnlessModule from 'koa-unless';
import { als } from '../store/als.js';
import { getDefaultStore } from '../store/default-store.js';
import {
  AuthError,
  ContextStoreUnavailableError,
  InvalidTokenError,
  MalformedAuthorizationError,
  MissingTokenError,
  RequestError,
} from '../errors.js';
import type { Scope } from '../store/scope.js';
import { responseSignal } from '../api/request-signal.js';
import type { ContextStore } from '../store/store.js';
import { checkOptionNames } from './options.js';
import { renderFailure, type RenderOptions } from './render.js';
import { checkRevocation, type IsRevoked } from './revocation.js';
import { mutableClaims } from './claims.js';
import { TokenVerifier, type TokenOptions } from './token.js';
import { subjectOf } from './user-id.js';

/**
 * koa-unless, attached as `.unless()` exactly as koa-jwt does. A plain import
 * (not `createRequire(import.meta.url)`), so the CommonJS build loads it too.
 */
const koaUnless = koaUnlessModule as (this: Middleware, options: UnlessOptions) => Middleware;

/** Options of `.unless()` (koa-unless 1.x): any match skips the middleware. */
export interface UnlessOptions {
  /** Paths (strings or RegExps, or `{ url, methods }`) that skip it. */
  path?: string | RegExp | ReadonlyArray<string | RegExp | { url: string | RegExp; methods?: string[]; method?: string | string[] }>;
  /** File extensions that skip it. */
  ext?: string | string[];
  /** HTTP methods that skip it. */
  method?: string | string[];
  /** Skips it when it returns true. */
  custom?: (ctx: Context) => boolean;
  /** Match `ctx.originalUrl` (true) or `ctx.url`. @default true */
  useOriginalUrl?: boolean;
}

/** Options of {@link userContext}. */
export interface UserContextOptions extends Partial<TokenOptions> {
  /**
   * Store of the users' contexts.
   * @default the default store (`getDefaultStore()`)
   */
  store?: ContextStore;
  /**
   * Name of a cookie to read the token from when there is no
   * `Authorization` header.
   * @default undefined (cookies are not read)
   */
  cookie?: string;
  /**
   * Custom token extractor, tried first. Return `null`/`undefined` to fall
   * back to the header and cookie.
   * @default undefined
   */
  getToken?: (ctx: Context) => string | null | undefined;
  /**
   * Trust claims already verified upstream (e.g. by koa-jwt) in
   * `ctx.state[key]`. `true` means `ctx.state.user`. When that state is
   * absent the token is verified here (if a key is configured).
   * @default false
   */
  upstreamClaims?: boolean | string;
  /**
   * Let requests without any token through without a user scope (public
   * routes). A token that is present but bad is still rejected.
   * @default false
   */
  passthrough?: boolean | ((ctx: Context) => boolean);
  /**
   * `realm` of the `WWW-Authenticate` challenge.
   * @default undefined (no realm attribute)
   */
  realm?: string;
  /**
   * `ctx.state` key of the verified claims (koa-jwt's `key`). The object
   * there is a copy apps may add to; the scope's claims stay frozen.
   * @default 'user'
   */
  key?: string;
  /**
   * `ctx.state` key that receives the raw token (koa-jwt's `tokenKey`).
   * @default undefined (the token is not put in state)
   */
  tokenKey?: string;
  /**
   * koa-jwt's `isRevoked(ctx, claims, token)`: return (or resolve) `true` to
   * refuse the token (401 `token_revoked`). Called on every request that
   * carries a token, cached or not, so a revocation takes effect on the next
   * request. If it throws, the request gets 503 `revocation_check_unavailable`.
   * @default undefined (no revocation check, at no cost)
   */
  isRevoked?: IsRevoked;
  /**
   * Throw the error for the app's error handler instead of answering, as
   * koa-jwt does: an {@link AuthError} with `status`, `expose: true`,
   * `headers` (`WWW-Authenticate`, `Retry-After`) and `originalError`.
   * @default false (the middleware answers with JSON `{ error, message }`)
   */
  throwErrors?: boolean;
  /**
   * Answer every 401 with `{ error: 'unauthorized', message: 'Authentication
   * Error' }` and no `error_description`, as koa-jwt does without `debug`.
   * The cause stays in `originalError` and the `tokenRejected` event.
   * @default false (messages say what is wrong and how to fix it)
   */
  genericErrors?: boolean;
}

/** Every option {@link userContext} takes. */
const OPTION_NAMES: readonly string[] = [
  'algorithms', 'secret', 'getKey', 'issuer', 'audience', 'clockTolerance', 'maxAge', 'requireExp', 'subjectClaim',
  'numericSubject', 'requireAccessTokenType', 'tokenCache', 'maxTokenLength', 'store', 'cookie', 'getToken',
  'upstreamClaims', 'passthrough', 'realm', 'key', 'tokenKey', 'isRevoked', 'throwErrors', 'genericErrors',
] satisfies (keyof UserContextOptions)[];

/** The middleware, with a view of its token cache for tests and metrics. */
export interface UserContextMiddleware {
  (ctx: Context, next: Next): Promise<void>;
  /** Verified tokens currently cached. */
  readonly tokenCacheSize: number;
  /** koa-unless: a middleware that skips this one for matching requests (e.g. `{ path: [/^\\/public/] }`). */
  unless(options: UnlessOptions | ((ctx: Context) => boolean)): Middleware;
}

interface Identity {
  readonly claims: Readonly<Record<string, unknown>>;
  /** Set when the claims are `ctx.state[upstreamClaims]` (not verified here, not frozen). */
  readonly upstream?: true;
  readonly userUuid: string;
  readonly clientId?: string | undefined;
}

/**
 * Creates the middleware.
 *
 * ```ts
 * app.use(userContext({ secret: process.env.JWT_SECRET, algorithms: ['HS256'] }));
 * ```
 *
 * On success `ctx.state.user` holds the claims, `ctx.state.userUuid` the user
 * id, and every downstream middleware runs inside the user's scope. On
 * failure the response is a JSON `{ error, message }` with 400/401 and an
 * RFC 6750 `WWW-Authenticate: Bearer …` header (503 when no key can be had,
 * the shared context store is unreachable — `context_store_unavailable` — or
 * the store is shutting down).
 */
export function userContext(options: UserContextOptions): UserContextMiddleware {
  if (options === null || typeof options !== 'object') {
    throw new TypeError("userContext(options): options is required, e.g. { secret, algorithms: ['HS256'] }");
  }
  checkOptionNames(options, OPTION_NAMES, 'userContext()');
  const store = options.store ?? getDefaultStore();
  const upstreamKey = options.upstreamClaims === true ? 'user' : options.upstreamClaims || undefined;
  if (upstreamKey !== undefined && typeof upstreamKey !== 'string') {
    throw new TypeError('options.upstreamClaims must be a boolean or the name of a ctx.state key');
  }
  const hasKey = options.secret !== undefined || options.getKey !== undefined;
  if (!hasKey && upstreamKey === undefined) {
    throw new TypeError('userContext() needs options.secret or options.getKey (or options.upstreamClaims)');
  }
  if (hasKey && options.algorithms === undefined) {
    throw new TypeError("options.algorithms is required, e.g. ['HS256'] or ['RS256']; it has no default");
  }
  const verifier = hasKey ? new TokenVerifier(options as TokenOptions, store.parseUserId, store.events) : undefined;
  const subjectClaim = options.subjectClaim ?? 'sub';
  const numericSubject = options.numericSubject === true;
  const { cookie, getToken, realm, isRevoked } = options;
  const stateKey = options.key ?? 'user';
  const tokenKey = options.tokenKey;
  for (const [name, value] of [['key', stateKey], ['tokenKey', tokenKey ?? 'token']] as const) {
    if (typeof value !== 'string' || value === '') throw new TypeError(`options.${name} must be a non-empty ctx.state key`);
  }
  if (isRevoked !== undefined && typeof isRevoked !== 'function') {
    throw new TypeError('options.isRevoked must be a function (ctx, claims, token) => boolean | Promise<boolean>');
  }
  const render: RenderOptions = {
    realm,
    throwErrors: flag(options.throwErrors, 'throwErrors'),
    genericErrors: flag(options.genericErrors, 'genericErrors'),
  };
  if (cookie !== undefined && (typeof cookie !== 'string' || cookie === '')) {
    throw new TypeError('options.cookie must be a non-empty cookie name');
  }
  if (getToken !== undefined && typeof getToken !== 'function') {
    throw new TypeError('options.getToken must be a function (ctx) => token');
  }
  const passthrough = options.passthrough ?? false;
  if (typeof passthrough !== 'boolean' && typeof passthrough !== 'function') {
    throw new TypeError('options.passthrough must be a boolean or a function (ctx) => boolean');
  }
  if (realm !== undefined && (typeof realm !== 'string' || /["\\\r\n]/.test(realm))) {
    throw new TypeError('options.realm must be a string without quotes, backslashes or line breaks');
  }

  function extractToken(ctx: Context): string | undefined {
    if (getToken !== undefined) {
      const token = getToken(ctx);
      if (token != null) {
        if (typeof token !== 'string') throw new InvalidTokenError('options.getToken returned a non-string token.');
        return token;
      }
    }
    const header = ctx.req.headers.authorization;
    if (header !== undefined) {
      if (countAuthorization(ctx.req.rawHeaders) > 1) {
        throw new MalformedAuthorizationError('Send exactly one Authorization header.');
      }
      const space = header.indexOf(' ');
      const token = header.slice(space + 1).trim();
      const bearer = space === 6 && (header.startsWith('Bearer') || header.slice(0, 6).toLowerCase() === 'bearer');
      if (!bearer || token === '' || token.includes(' ')) {
        throw new MalformedAuthorizationError('The Authorization header must be "Bearer <token>".');
      }
      return token;
    }
    if (cookie !== undefined) {
      const token = ctx.cookies.get(cookie);
      if (token) return token;
    }
    return undefined;
  }

  function fromUpstream(state: unknown): Identity {
    const claims = state as Record<string, unknown>;
    return { claims, upstream: true, userUuid: subjectOf(claims, subjectClaim, numericSubject, store.parseUserId, 'upstream claims') };
  }

  /** Identity from claims verified upstream, if configured and present. */
  function upstreamIdentity(ctx: Context): Identity | undefined {
    if (upstreamKey === undefined) return undefined;
    const state: unknown = ctx.state[upstreamKey];
    return state !== null && typeof state === 'object' ? fromUpstream(state) : undefined;
  }

  /** No token: through without a user scope on a public route, else 401. */
  function anonymous(ctx: Context): undefined {
    if (passthrough === true || (typeof passthrough === 'function' && passthrough(ctx))) return undefined;
    throw new MissingTokenError(
      cookie !== undefined
        ? `Send a token as "Authorization: Bearer <token>" or in the "${cookie}" cookie.`
        : 'Send a token as "Authorization: Bearer <token>".',
    );
  }

  function reject(ctx: Context, error: RequestError, userUuid?: string): void {
    if (error instanceof AuthError) {
      store.events.emit('tokenRejected', { code: error.code, error: error.error, status: error.status });
    } else if (error instanceof ContextStoreUnavailableError && userUuid !== undefined) {
      store.events.emit('storeUnavailable', { userUuid, code: error.code });
    }
    renderFailure(ctx, error, render);
  }

  /** Runs the rest of the request in the user's scope and closes the scope when it is done. */
  function runInUserScope(ctx: Context, next: Next, scope: Scope): Promise<void> {
    scope.setSignalSource(() => responseSignal(ctx.res, scope));
    let downstream: Promise<void>;
    try {
      downstream = Promise.resolve(als.run(scope, next));
    } catch (error) {
      scope.close();
      throw error;
    }
    // One reaction per request (no async frame, no extra await): this is the
    // hot path of every authenticated request.
    return downstream.then(
      () => {
        if (!respondsLater(ctx)) scope.close();
        // A streamed body is written after the middleware returns: keep the scope (and the
        // lease on the clients the stream uses) until the response is done.
        else ctx.res.once('close', () => scope.close());
      },
      (error: unknown) => {
        scope.close();
        throw error;
      },
    );
  }

  async function enterAfterLoad(ctx: Context, next: Next, opened: Promise<Scope>, userUuid: string): Promise<void> {
    let scope: Scope;
    try {
      scope = await opened;
    } catch (error) {
      if (error instanceof RequestError) return reject(ctx, error, userUuid);
      throw error;
    }
    return runInUserScope(ctx, next, scope);
  }

  /** Opens the user's scope (loading the context first with a shared store) and runs the rest in it. */
  function enterScope(ctx: Context, next: Next, identity: Identity | undefined, token: string | undefined): Promise<void> {
    if (identity === undefined) return Promise.resolve(next());
    // Verified claims are frozen (they are shared by the cache and the scope):
    // the app gets its own copy to add fields to. Upstream claims are the
    // app's own object already.
    ctx.state[stateKey] = identity.upstream === true ? identity.claims : mutableClaims(identity.claims);
    ctx.state['userUuid'] = identity.userUuid;
    if (identity.clientId !== undefined) ctx.state['clientId'] = identity.clientId;
    if (tokenKey !== undefined) ctx.state[tokenKey] = token;
    let opened: Scope | Promise<Scope>;
    try {
      // A shared store returns a promise when it must load the context first.
      opened = store.acquireScope(identity.userUuid, identity.claims);
    } catch (error) {
      if (error instanceof RequestError) {
        reject(ctx, error, identity.userUuid);
        return Promise.resolve();
      }
      throw error;
    }
    if (opened instanceof Promise) return enterAfterLoad(ctx, next, opened, identity.userUuid);
    return runInUserScope(ctx, next, opened);
  }

  /** Consults `isRevoked`, then enters the scope. */
  function enterUnlessRevoked(ctx: Context, next: Next, identity: Identity, token: string): Promise<void> {
    let verdict: void | Promise<void>;
    try {
      verdict = checkRevocation(isRevoked!, ctx, identity.claims, token);
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      reject(ctx, error);
      return Promise.resolve();
    }
    if (verdict === undefined) return enterScope(ctx, next, identity, token);
    return verdict.then(
      () => enterScope(ctx, next, identity, token),
      (error: unknown) => {
        if (!(error instanceof AuthError)) throw error;
        reject(ctx, error);
      },
    );
  }

  async function enterAfterKey(ctx: Context, next: Next, found: Promise<Identity>, token: string): Promise<void> {
    let identity: Identity;
    try {
      identity = await found;
    } catch (error) {
      if (error instanceof AuthError) return reject(ctx, error);
      throw error;
    }
    if (isRevoked !== undefined) return enterUnlessRevoked(ctx, next, identity, token);
    return enterScope(ctx, next, identity, token);
  }

  // Not an async function on purpose: with a cached token and the in-memory
  // store the whole request path is synchronous up to `next()`, so it
  // allocates one promise reaction per request instead of async frames and
  // awaits. Errors are still reported as rejections, never thrown.
  function userContextMiddleware(ctx: Context, next: Next): Promise<void> {
    try {
      let found: Identity | Promise<Identity> | undefined;
      let token: string | undefined;
      try {
        found = upstreamIdentity(ctx);
        if (found === undefined) {
          token = extractToken(ctx);
          found = token === undefined || verifier === undefined ? anonymous(ctx) : verifier.verify(token);
        }
      } catch (error) {
        if (error instanceof AuthError) {
          reject(ctx, error);
          return Promise.resolve();
        }
        throw error;
      }
      if (found instanceof Promise) return enterAfterKey(ctx, next, found, token!);
      if (isRevoked !== undefined && token !== undefined && found !== undefined) {
        return enterUnlessRevoked(ctx, next, found, token);
      }
      return enterScope(ctx, next, found, token);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  Object.defineProperty(userContextMiddleware, 'unless', { value: koaUnless, enumerable: false });
  return Object.defineProperty(userContextMiddleware, 'tokenCacheSize', {
    get: () => verifier?.cacheSize ?? 0,
  }) as UserContextMiddleware;
}

/** Whether the response is still to be written after the middleware chain returns. */
function respondsLater(ctx: Context): boolean {
  if (ctx.res.writableFinished || ctx.res.destroyed) return false;
  if (ctx.respond === false) return true;
  const body = ctx.body as { pipe?: unknown } | null | undefined;
  return typeof body?.pipe === 'function';
}

function countAuthorization(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Compare without allocating for the usual spellings.
    if (name.length === 13 && (name === 'authorization' || name === 'Authorization' || name.toLowerCase() === 'authorization')) n++;
  }
  return n;
}

function flag(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`options.${name} must be a boolean`);
  return value;
}
