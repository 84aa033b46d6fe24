/** A small Koa app around the middleware, served by one http.Server per test. */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import type { Context } from 'koa';
import Router from '@koa/router';
import { expect } from 'vitest';
import {
  configureUser,
  currentUserUuid,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  type ContextPatch,
  type UserContextMiddleware,
} from '../../src/index.js';

/** Waits between 0 and `maxMs` ms (random), to interleave concurrent work. */
export function randomDelay(maxMs = 10): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * maxMs));
}

/** Lets queued promise callbacks (async disposal) run; works under fake timers. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** Reads and parses a JSON request body (no body-parser dependency). */
export async function readJson(ctx: Context): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? {} : (JSON.parse(text) as unknown);
}

export interface TestApp {
  app: Koa;
  router: Router;
  /** How many requests got past the middleware. */
  hits: { count: number };
}

/**
 * A Koa app with `middleware` and the routes the issue describes:
 * GET /whoami, POST /configure, POST /query (reads after random delays).
 */
export function buildApp(middleware: UserContextMiddleware, before: Koa.Middleware[] = []): TestApp {
  const app = new Koa();
  const router = new Router();
  const hits = { count: 0 };
  for (const mw of before) app.use(mw);
  app.use(middleware);
  app.use(async (_ctx, next) => {
    hits.count++;
    await next();
  });
  router.get('/whoami', (ctx) => {
    ctx.body = { user: currentUserUuid() ?? null, state: ctx.state['userUuid'] ?? null };
  });
  router.post('/configure', async (ctx) => {
    const patch = (await readJson(ctx)) as ContextPatch;
    await randomDelay(5);
    const view = await configureUser(patch);
    ctx.body = { provider: view.provider, model: view.model, version: view.version };
  });
  router.post('/query', async (ctx) => {
    const before = { user: currentUserUuid(), provider: getUserProvider(), model: getUserModel() };
    await randomDelay(5);
    const middle = { user: currentUserUuid(), provider: getUserProvider(), model: getUserModel() };
    await randomDelay(5);
    const llm = getUserLlmInstance() as { userUuid: string; provider: string | null; model: string | null } | null;
    ctx.body = { state: ctx.state['userUuid'], before, middle, llm };
  });
  app.use(router.routes());
  return { app, router, hits };
}

/** Starts `app` on an ephemeral port; returns the server and a closer. */
export async function listen(app: Koa): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const server = app.listen(0);
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface AuthResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: unknown;
}

/** Asserts the JSON error response the middleware sends for an auth failure. */
export function expectAuthError(res: AuthResponse, status: number, error: string, secrets: readonly string[] = []): void {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  expect(res.body).toEqual({ error, message: expect.any(String) });
  expect((res.body as { message: string }).message.length).toBeGreaterThan(0);
  if (status === 401 || status === 400) {
    expect(String(res.headers['www-authenticate'])).toMatch(/^Bearer/);
  }
  for (const secret of secrets) expect(res.text).not.toContain(secret);
  expect(res.text).not.toMatch(/(?:\n|\\n)\s+at |\.[cm]?[jt]s:\d+:\d+/); // no stack frames
  expect(res.text).not.toContain('Error:');
}
