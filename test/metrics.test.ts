import { randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ContextStore, configureUser, getUserLlmInstance, getUserModel, runAsUser, userContext } from '../src/index.js';
import { registerContextMetrics } from '../src/metrics.js';

const SECRET = randomBytes(48).toString('base64url');
const sign = (sub: string, expiresIn = 600) => jwt.sign({ sub }, SECRET, { algorithm: 'HS256', expiresIn });

const stores: ContextStore[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

class Client {
  closed = false;
  async close(): Promise<void> {
    this.closed = true;
  }
}

function setup(options: ConstructorParameters<typeof ContextStore>[0] = {}) {
  const store = new ContextStore({
    sweepInterval: 0,
    resources: { llmInstance: { create: () => new Client() } },
    ...options,
  });
  stores.push(store);
  const registry = new Registry();
  const auth = userContext({ store, secret: SECRET, algorithms: ['HS256'] });
  const metrics = registerContextMetrics(store, { registry, middleware: auth });
  const app = new Koa();
  app.use(async (ctx, next) => {
    if (ctx.path !== '/metrics') return next();
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  app.use(auth);
  app.use(async (ctx) => {
    if (ctx.path === '/configure') await configureUser({ provider: 'Google', model: String(ctx.query['model'] ?? 'm') });
    getUserLlmInstance();
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    ctx.body = { model: getUserModel() };
  });
  return { store, registry, metrics, auth, server: app.callback() };
}

/** Parses the exposition text into "name{labels}" → value. */
async function scrape(server: ReturnType<typeof setup>['server']): Promise<Map<string, number>> {
  const res = await request(server).get('/metrics').expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  for (const line of res.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

describe('registerContextMetrics', () => {
  it('exposes every series from the first scrape, at zero', async () => {
    const { server } = setup();
    const m = await scrape(server);
    const P = 'koa_user_context_';
    for (const name of [
      'active_contexts', 'requests_in_flight', 'token_cache_hits_total', 'token_cache_misses_total', 'token_cache_size',
      'context_loads_total{source="created"}',
      'evictions_total{reason="expired"}', 'evictions_total{reason="evicted"}', 'evictions_total{reason="manual"}',
      'evictions_total{reason="replaced"}',
      'tokens_rejected_total{code="token_expired"}', 'tokens_rejected_total{code="missing_token"}',
      'context_missing_total{function="getUserProvider"}',
      'resource_disposals_total{resource="llmInstance",outcome="ok"}',
    ]) {
      expect(m.get(P + name), name).toBe(0);
    }
  });

  it('counts loads, cache hits/misses, rejections, in-flight requests and active contexts under interleaved traffic', async () => {
    const { server } = setup();
    const users = Array.from({ length: 8 }, () => randomUUID());
    const tokens = users.map((u) => sign(u));
    const perUser = 6;
    await Promise.all(
      tokens.flatMap((t) => Array.from({ length: perUser }, () => request(server).get('/').set('Authorization', `Bearer ${t}`).expect(200))),
    );
    await request(server).get('/').expect(401);
    await request(server).get('/').set('Authorization', `Bearer ${sign(users[0]!, -5)}`).expect(401);
    await request(server).get('/').set('Authorization', 'Bearer a.b.c').expect(401);

    const m = await scrape(server);
    expect(m.get('koa_user_context_context_loads_total{source="created"}')).toBe(users.length);
    expect(m.get('koa_user_context_active_contexts')).toBe(users.length);
    // Every token is verified at least once; concurrent first requests of one
    // token may each miss, so hits + misses add up to the requests made.
    const hits = m.get('koa_user_context_token_cache_hits_total')!;
    const misses = m.get('koa_user_context_token_cache_misses_total')!;
    expect(misses).toBeGreaterThanOrEqual(users.length + 2);
    expect(hits + misses).toBe(users.length * perUser + 2);
    expect(m.get('koa_user_context_token_cache_size')).toBe(users.length);
    expect(m.get('koa_user_context_tokens_rejected_total{code="missing_token"}')).toBe(1);
    expect(m.get('koa_user_context_tokens_rejected_total{code="token_expired"}')).toBe(1);
    expect(m.get('koa_user_context_tokens_rejected_total{code="invalid_token"}')).toBe(1);
    expect(m.get('koa_user_context_requests_in_flight')).toBe(0);
  });

  it('reports requests in flight while they run', async () => {
    const store = new ContextStore({ sweepInterval: 0 });
    stores.push(store);
    const registry = new Registry();
    registerContextMetrics(store, { registry });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const running = Promise.all([randomUUID(), randomUUID(), randomUUID()].map((u) => runAsUser(u, () => gate, { store })));
    const during = await registry.getSingleMetricAsString('koa_user_context_requests_in_flight');
    release();
    await running;
    const after = await registry.getSingleMetricAsString('koa_user_context_requests_in_flight');
    expect(during).toMatch(/^koa_user_context_requests_in_flight 3$/m);
    expect(after).toMatch(/^koa_user_context_requests_in_flight 0$/m);
  });

  it('counts evictions by reason and resource disposals', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { server, store } = setup({ max: 3, ttl: 60_000 });
    const [a, b, c, d] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await request(server).post('/configure?model=one').set('Authorization', `Bearer ${sign(a)}`).expect(200);
    await request(server).post('/configure?model=two').set('Authorization', `Bearer ${sign(a)}`).expect(200); // replaced
    for (const u of [b, c, d]) await request(server).get('/').set('Authorization', `Bearer ${sign(u)}`).expect(200); // a: LRU-evicted
    store.evict(b, 'manual');
    vi.setSystemTime(Date.now() + 120_000);
    store.purgeStale(); // c, d expired
    await store.close();
    const m = await scrape(server);
    expect(m.get('koa_user_context_evictions_total{reason="replaced"}')).toBe(1);
    expect(m.get('koa_user_context_evictions_total{reason="evicted"}')).toBe(1);
    expect(m.get('koa_user_context_evictions_total{reason="manual"}')).toBe(1);
    expect(m.get('koa_user_context_evictions_total{reason="expired"}')).toBe(2);
    // Four users, one LLM client each, plus the one a's reconfiguration replaced.
    expect(m.get('koa_user_context_resource_disposals_total{resource="llmInstance",outcome="ok"}')).toBe(5);
    expect(m.get('koa_user_context_active_contexts')).toBe(0);
  });

  it('counts helpers called outside a scope', async () => {
    const store = new ContextStore({ sweepInterval: 0, mode: 'multi-user' });
    stores.push(store);
    const registry = new Registry();
    registerContextMetrics(store, { registry });
    store.events.emit('contextMissing', { fn: 'getUserModel' });
    store.events.emit('contextMissing', { fn: 'getUserModel' });
    store.events.emit('contextMissing', { fn: 'someAppHelper' });
    const text = await registry.getSingleMetricAsString('koa_user_context_context_missing_total');
    expect(text).toMatch(/^koa_user_context_context_missing_total\{function="getUserModel"\} 2$/m);
    expect(text).toMatch(/^koa_user_context_context_missing_total\{function="someAppHelper"\} 1$/m);
  });

  it('unregister() removes the metrics and stops counting; registering twice is a clear error', async () => {
    const store = new ContextStore({ sweepInterval: 0 });
    stores.push(store);
    const registry = new Registry();
    const first = registerContextMetrics(store, { registry });
    expect(() => registerContextMetrics(store, { registry })).toThrow(/already holds koa_user_context_active_contexts/);
    const other = registerContextMetrics(store, { registry, prefix: 'tenant_b_' });
    first.unregister();
    expect(registry.getSingleMetric('koa_user_context_active_contexts')).toBeUndefined();
    store.currentGeneration(randomUUID());
    expect(await registry.getSingleMetricAsString('tenant_b_context_loads_total')).toMatch(/source="created"} 1$/m);
    expect(store.events.listenerCount('contextLoaded')).toBe(1);
    other.unregister();
    expect(store.events.listening).toBe(false);
    expect(await registry.metrics()).toBe('\n');
  });

  it('validates its options', () => {
    const store = new ContextStore({ sweepInterval: 0 });
    stores.push(store);
    expect(() => registerContextMetrics({} as never)).toThrow(/store must be a ContextStore/);
    expect(() => registerContextMetrics(store, { prefix: 'bad prefix' })).toThrow(/options\.prefix/);
    expect(() => registerContextMetrics(store, { registry: {} as never })).toThrow(/options\.registry/);
    expect(() => registerContextMetrics(store, { registry: new Registry(), middleware: (() => {}) as never })).toThrow(/options\.middleware/);
  });
});
