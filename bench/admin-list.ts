/**
 * How long the admin listing takes with 10 000 contexts, and what the event
 * hooks cost on the request path. Run: npx tsx bench/admin-list.ts
 * (numbers, not assertions; never part of the unit tests).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import { Registry } from 'prom-client';
import { ContextStore, adminRouter, userContext } from '../src/index.js';
import { registerContextMetrics } from '../src/metrics.js';

function fakeCtx(path: string, query: Record<string, string>, state: Record<string, unknown>) {
  const headers = new Map<string, string>();
  return {
    path, method: 'GET', query, state, status: 404, body: undefined as unknown,
    set: (k: string, v: string) => headers.set(k, v),
  } as unknown as Koa.Context;
}

async function time(label: string, runs: number, fn: () => unknown): Promise<void> {
  for (let i = 0; i < 3; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await fn();
  const per = (performance.now() - t0) / runs;
  console.log(`${label.padEnd(58)} ${per >= 1 ? `${per.toFixed(2)} ms` : `${(per * 1000).toFixed(1)} µs`}`);
}

const store = new ContextStore({ sweepInterval: 0, max: 20_000 });
const providers = ['Google', 'Anthropic', 'OpenAI', 'Amazon'];
for (let i = 0; i < 10_000; i++) store.commit(randomUUID(), { provider: providers[i % 4]!, model: `model-${i % 10}` });
const admin = adminRouter({ store });
const state = { user: { role: 'admin', sub: randomUUID() } };
const next = async () => {};
await time('GET /admin/contexts (10 000 contexts, page of 50)', 50, () => admin(fakeCtx('/admin/contexts', {}, state), next));
await time('GET /admin/contexts?q=anthropic (10 000 contexts)', 50, () => admin(fakeCtx('/admin/contexts', { q: 'anthropic' }, state), next));
await time('GET /admin/contexts?sort=userUuid&limit=500', 50, () => admin(fakeCtx('/admin/contexts', { sort: 'userUuid', limit: '500' }, state), next));

// Request path: middleware + scope, with and without the metrics listeners.
const secret = randomBytes(48).toString('base64url');
for (const withMetrics of [false, true]) {
  const s = new ContextStore({ sweepInterval: 0 });
  const auth = userContext({ store: s, secret, algorithms: ['HS256'] });
  if (withMetrics) registerContextMetrics(s, { registry: new Registry(), middleware: auth });
  const tokens = Array.from({ length: 100 }, () => jwt.sign({ sub: randomUUID() }, secret, { algorithm: 'HS256', expiresIn: 600 }));
  let i = 0;
  const ctx = (t: string) => ({
    req: { headers: { authorization: `Bearer ${t}` }, rawHeaders: ['Authorization', `Bearer ${t}`] },
    state: {}, set() {}, cookies: { get: () => undefined },
  }) as unknown as Koa.Context;
  await time(`userContext() per request, cached token, metrics ${withMetrics ? 'on ' : 'off'}`, 200_000, () => auth(ctx(tokens[i++ % 100]!), next));
  await s.close();
}
await store.close();
