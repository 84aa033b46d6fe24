/**
 * The example app's router: find-my-way (Fastify's radix-tree router) behind
 * a Koa middleware, with JSON answers for the paths it knows under another
 * method (405 with `Allow`, and `OPTIONS` answered 204 with `Allow`).
 *
 * Why not @koa/router: its `routes()` tests every route's regular expression,
 * parses `ctx.host` and composes the matched layers on every request, which
 * costs this app 4–6 µs per request, about as much as this library's middleware
 * does (docs/benchmarks.md, "The example app"). A lookup here is one tree walk
 * and no allocation on a route without parameters. Any Koa router works with
 * koa-user-context: the middleware and the getters do not depend on it.
 *
 * @module
 */
import FindMyWay from 'find-my-way';
import type Koa from 'koa';

/** A handler's context: Koa's, with the route's decoded path parameters. */
export type RouteContext = Koa.Context & { params: Record<string, string> };
export type RouteHandler = (ctx: RouteContext, next: Koa.Next) => unknown;

type Method = 'GET' | 'POST' | 'DELETE';

/** A declared route: what {@link Router.table} lists. */
export interface Route {
  readonly methods: readonly string[];
  readonly path: string;
  readonly handler: RouteHandler;
}

export class Router {
  readonly #tree = FindMyWay({ ignoreTrailingSlash: true });
  readonly #table: Route[] = [];

  /** The routes declared so far, in order. */
  get table(): readonly Route[] {
    return this.#table;
  }

  /** `GET` (and `HEAD`, which Koa answers without the body). */
  get(path: string, handler: RouteHandler): this {
    return this.#on(['GET', 'HEAD'], path, handler);
  }

  post(path: string, handler: RouteHandler): this {
    return this.#on(['POST'], path, handler);
  }

  delete(path: string, handler: RouteHandler): this {
    return this.#on(['DELETE'], path, handler);
  }

  #on(methods: readonly (Method | 'HEAD')[], path: string, handler: RouteHandler): this {
    // find-my-way throws on a route declared twice.
    this.#tree.on([...methods], path, handler as never);
    this.#table.push(Object.freeze({ methods: Object.freeze([...methods]), path, handler }));
    return this;
  }

  /** The methods `path` is routed for, in the order they were first declared (asked on a miss only). */
  allowed(path: string): string[] {
    const declared = new Set(this.#table.flatMap((route) => route.methods));
    return [...declared].filter((method) => this.#tree.find(method as Method, path) !== null);
  }

  /** The middleware: a matched route's handler, or 405 / OPTIONS for a known path, or `next()`. */
  routes(): Koa.Middleware {
    const tree = this.#tree;
    const allowed = (path: string): string[] => this.allowed(path);
    // Not async: every request passes here.
    return function routes(ctx: Koa.Context, next: Koa.Next): unknown {
      const found = tree.find(ctx.method as Method, ctx.path);
      if (found !== null) {
        const routed = ctx as RouteContext;
        routed.params = found.params as Record<string, string>;
        return (found.handler as unknown as RouteHandler)(routed, next);
      }
      const methods = allowed(ctx.path);
      if (methods.length === 0) return next();
      ctx.set('Allow', methods.join(', '));
      if (ctx.method === 'OPTIONS') {
        ctx.status = 204;
        return undefined;
      }
      ctx.status = 405;
      ctx.body = { error: 'method_not_allowed', message: `${ctx.path} answers ${methods.join(', ')}, not ${ctx.method}.` };
      return undefined;
    };
  }
}
