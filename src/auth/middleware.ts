/**
 * The Koa middleware: authenticate the request, take the user id from the
 * token, and run the rest of the request inside that user's scope.
 *
 * @module
 */
import type { Context, Next } from 'koa';
import { als } from '../store/als.js';
import { getDefaultStore } from '../store/default-store.js';
import {
  AuthError,
  ContextStoreUnavailableError,
  InvalidSubjectError,
  InvalidTokenError,
  MalformedAuthorizationError,
  MissingTokenError,
  RequestError,
  StoreClosedError,
  UserContextError,
} from '../errors.js';
import type { Scope } from '../store/scope.js';
import { responseSignal } from '../api/request-signal.js';
import type { ContextStore } from '../store/store.js';
import { TokenVerifier, type TokenOptions } from './token.js';

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
}

/** The middleware, with a view of its token cache for tests and metrics. */
export interface UserContextMiddleware {
  (ctx: Context, next: Next): Promise<void>;
  /** Verified tokens currently cached. */
  readonly tokenCacheSize: number;
}

interface Identity {
  claims: Readonly<Record<string, unknown>>;
  userUuid: string;
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
  const { cookie, getToken, realm } = options;
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
    const subject = Object.prototype.hasOwnProperty.call(claims, subjectClaim) ? claims[subjectClaim] : undefined;
    try {
      return { claims, userUuid: store.parseUserId(subject) };
    } catch (cause) {
      const detail = cause instanceof UserContextError ? ` ${cause.message}` : '';
      throw new InvalidSubjectError(`The upstream claims' "${subjectClaim}" is not a valid user id.${detail}`, { cause });
    }
  }

  /** The caller's identity; `undefined` for an anonymous request allowed through. */
  function authenticate(ctx: Context): Identity | Promise<Identity> | undefined {
    if (upstreamKey !== undefined) {
      const state: unknown = ctx.state[upstreamKey];
      if (state !== null && typeof state === 'object') return fromUpstream(state);
    }
    const token = extractToken(ctx);
    if (token === undefined || verifier === undefined) {
      if (passthrough === true || (typeof passthrough === 'function' && passthrough(ctx))) return undefined;
      throw new MissingTokenError(
        cookie !== undefined
          ? `Send a token as "Authorization: Bearer <token>" or in the "${cookie}" cookie.`
          : 'Send a token as "Authorization: Bearer <token>".',
      );
    }
    return verifier.verify(token);
  }

  function reject(ctx: Context, error: RequestError, userUuid?: string): void {
    if (error instanceof AuthError) {
      store.events.emit('tokenRejected', { code: error.code, error: error.error, status: error.status });
    } else if (error instanceof ContextStoreUnavailableError && userUuid !== undefined) {
      store.events.emit('storeUnavailable', { userUuid, code: error.code });
    }
    ctx.status = error.status;
    ctx.body = {
      error: error.error,
      message: error instanceof StoreClosedError ? 'The server is shutting down; retry on another instance.' : error.message,
    };
    if (error.status === 401 || error.status === 400) ctx.set('WWW-Authenticate', challenge(realm, error));
    if (error.status === 503) ctx.set('Retry-After', '5');
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
  function enterScope(ctx: Context, next: Next, identity: Identity | undefined): Promise<void> {
    if (identity === undefined) return Promise.resolve(next());
    ctx.state['user'] = identity.claims;
    ctx.state['userUuid'] = identity.userUuid;
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

  async function enterAfterKey(ctx: Context, next: Next, found: Promise<Identity>): Promise<void> {
    let identity: Identity;
    try {
      identity = await found;
    } catch (error) {
      if (error instanceof AuthError) return reject(ctx, error);
      throw error;
    }
    return enterScope(ctx, next, identity);
  }

  // Not an async function on purpose: with a cached token and the in-memory
  // store the whole request path is synchronous up to `next()`, so it
  // allocates one promise reaction per request instead of async frames and
  // awaits. Errors are still reported as rejections, never thrown.
  function userContextMiddleware(ctx: Context, next: Next): Promise<void> {
    try {
      let found: Identity | Promise<Identity> | undefined;
      try {
        found = authenticate(ctx);
      } catch (error) {
        if (error instanceof AuthError) {
          reject(ctx, error);
          return Promise.resolve();
        }
        throw error;
      }
      if (found instanceof Promise) return enterAfterKey(ctx, next, found);
      return enterScope(ctx, next, found);
    } catch (error) {
      return Promise.reject(error);
    }
  }

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

function challenge(realm: string | undefined, error: RequestError): string {
  const parts: string[] = [];
  if (realm !== undefined) parts.push(`realm="${realm}"`);
  if (error.bearerError !== undefined) {
    parts.push(`error="${error.bearerError}"`);
    parts.push(`error_description="${error.message.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, '')}"`);
  }
  return parts.length > 0 ? `Bearer ${parts.join(', ')}` : 'Bearer';
}
