/**
 * Usage as the operator sees it, through the example app on the wire server:
 * the app answers a refused call 429 with Retry-After and the stable code;
 * the admin API lists usage per user, sorted, and shows who was limited;
 * Prometheus aggregates by provider/model/outcome with no user id in any
 * label or value.
 */
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createStore } from '../examples/app.js';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import { registerUsageMetrics } from '../src/metrics.js';
import { createUsageMeter, MemoryUsageBackend, type UsageMeter } from '../src/usage.js';

let wire: WireServer;
let meter: UsageMeter;
let app: ReturnType<typeof createApp>['app'];
let closeStore: () => Promise<void>;
const secret = generateSecret();
const admin = mintToken(secret, randomUUID(), { role: 'admin' });
const users = Array.from({ length: 4 }, (_, i) => ({ id: randomUUID(), key: `adm${i}-${randomUUID()}`, calls: i + 1 }));
const limited = users[3]!;

beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 1 });
  meter = createUsageMeter({ backend: new MemoryUsageBackend(), limits: { requestsPerMinute: 3 } });
  const llms = exampleLlmRegistry(wire.url, { usage: meter });
  const created = createApp({ secret, llms, store: createStore({}, undefined, llms), admin: { usage: meter } });
  app = created.app;
  closeStore = () => created.store.close();
});
afterAll(async () => {
  await closeStore();
  await wire.close();
});

const as = (user: { id: string }) => `Bearer ${mintToken(secret, user.id)}`;

describe('usage in the example app and the admin API', () => {
  it('a call past the limit is 429 usage_limit_exceeded with Retry-After; the admin API lists usage per user, sortable, with the limited user', async () => {
    const server = request(app.callback());
    for (const u of users) {
      await server.post('/configure').set('Authorization', as(u)).send({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey: u.key } }).expect(200);
    }
    await Promise.all(users.map(async (u) => {
      for (let i = 0; i < u.calls; i++) {
        const res = await server.post('/query').set('Authorization', as(u)).send({ prompt: `question ${i} of ${u.id}`, stream: false });
        if (i < 3) expect(res.status).toBe(200);
        else {
          expect(res.status).toBe(429);
          expect(res.body).toMatchObject({ error: 'usage_limit_exceeded', limit: 'requests' });
          expect(res.body.message).toMatch(/3 LLM calls per minute.*retry after \d+ s/);
          expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        }
      }
    }));

    const list = await server.get('/admin/usage?sort=calls&order=desc').set('Authorization', `Bearer ${admin}`).expect(200);
    expect(list.body).toMatchObject({ total: 4, sort: 'calls', order: 'desc', backend: 'memory' });
    expect(list.body.items.map((r: { calls: number }) => r.calls)).toEqual([3, 3, 2, 1]);
    const asc = await server.get('/admin/usage?sort=calls&order=asc').set('Authorization', `Bearer ${admin}`).expect(200);
    expect(asc.body.items.map((r: { calls: number }) => r.calls)).toEqual([1, 2, 3, 3]);
    const hit = await server.get('/admin/usage?limited=true').set('Authorization', `Bearer ${admin}`).expect(200);
    expect(hit.body.items.map((r: { userUuid: string }) => r.userUuid)).toEqual([limited.id]);
    expect(hit.body.items[0]).toMatchObject({ limited: { requests: 1 }, limitedCount: 1, models: [{ provider: 'OpenAI', model: 'gpt-4o-mini', calls: 3 }] });
    const one = await server.get(`/admin/usage/${limited.id}`).set('Authorization', `Bearer ${admin}`).expect(200);
    expect(one.body).toMatchObject({ userUuid: limited.id, calls: 3, limits: { requestsPerMinute: 3 } });
    expect(one.body.tokens).toBe(one.body.inputTokens + one.body.outputTokens);
    // Nothing secret in what the admin sees.
    const all = JSON.stringify([list.body, one.body]);
    for (const u of users) expect(all).not.toContain(u.key);
    expect(all).not.toContain('question');

    await server.get('/admin/usage').set('Authorization', as(users[0]!)).expect(403);
    const bad = await server.get('/admin/usage?sort=cost').set('Authorization', `Bearer ${admin}`).expect(400);
    expect(bad.body).toMatchObject({ error: 'invalid_query' });
    expect(bad.body.message).toContain('tokens, calls, errors');
    // The usage listing refuses the mistakes the contexts listing refuses, with the same messages (one rule: src/ops/admin-query.ts).
    for (const qs of ['limit=0', 'limit=501', 'limit=abc', 'offset=-1', 'order=up', 'limit=1&limit=2', 'limited=yes', 'limited=true&limited=false', 'color=red']) {
      const usage = await server.get(`/admin/usage?${qs}`).set('Authorization', `Bearer ${admin}`);
      expect({ qs, status: usage.status, error: usage.body.error }).toEqual({ qs, status: 400, error: 'invalid_query' });
      // Each listing names its own parameters and offset bound (10 000 users for usage).
      if (qs === 'offset=-1') expect(usage.body.message).toBe('"offset" must be an integer from 0 to 10000, got "-1".');
      if (qs.startsWith('limited') || qs === 'color=red' || qs === 'offset=-1') continue;
      const contexts = await server.get(`/admin/contexts?${qs}`).set('Authorization', `Bearer ${admin}`);
      expect({ qs, message: usage.body.message }).toEqual({ qs, message: contexts.body.message });
    }
  });

  it('Prometheus: calls, tokens and refusals by provider/model/outcome, no user id anywhere', async () => {
    const registry = new Registry();
    const off = registerUsageMetrics(meter, { registry });
    const user = { id: randomUUID(), key: `prom-${randomUUID()}` };
    const server = request(app.callback());
    await server.post('/configure').set('Authorization', as(user)).send({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey: user.key } }).expect(200);
    for (let i = 0; i < 4; i++) await server.post('/query').set('Authorization', as(user)).send({ prompt: `p${i}`, stream: false });
    const text = await registry.metrics();
    expect(text).toMatch(/koa_user_context_llm_calls_total\{provider="Anthropic",model="claude-3-5-haiku",outcome="ok"\} 3/);
    expect(text).toMatch(/koa_user_context_usage_limited_total\{limit="requests"\} 1/);
    expect(text).toMatch(/koa_user_context_usage_limited_total\{limit="tokens"\} 0/);
    const usage = await meter.read(user.id);
    expect(text).toContain(`koa_user_context_llm_tokens_total{provider="Anthropic",model="claude-3-5-haiku",direction="output"} ${usage.outputTokens}`);
    expect(text).not.toContain(user.id);
    expect(text).not.toMatch(/\{[^}]*user/i);
    off();
    expect((await registry.metrics()).trim()).toBe('');
  });
});

describe('usage limits in the example agent loop (POST /agent)', () => {
  it('JSON: a loop refused is 429 with Retry-After; SSE: the stream ends with an error event usage_limit_exceeded', async () => {
    const server = request(app.callback());
    const user = { id: randomUUID(), key: `agent-${randomUUID()}` };
    await server.post('/configure').set('Authorization', as(user)).send({ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { apiKey: user.key } }).expect(200);
    // The minute holds 3 calls: two loops of one step each, the third call is refused.
    for (let i = 0; i < 2; i++) await server.post('/agent').set('Authorization', as(user)).send({ prompt: `hello ${i}`, stream: false }).expect(200);
    const stream = await server.post('/agent').set('Authorization', as(user)).send({ prompt: 'hello streamed', stream: true }).buffer(true).parse((res, done) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      res.on('end', () => done(null, text));
    });
    expect(stream.status).toBe(200);
    expect(stream.body as string).toMatch(/event: token/);
    const refused = await server.post('/agent').set('Authorization', as(user)).send({ prompt: 'once more', stream: true }).buffer(true).parse((res, done) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      res.on('end', () => done(null, text));
    });
    const events = (refused.body as string).trim().split('\n\n');
    expect(events.at(-1)).toMatch(/^event: error\ndata: .*"error":"usage_limit_exceeded"/);
    expect(JSON.parse(events.at(-1)!.split('data: ')[1]!)).toMatchObject({ error: 'usage_limit_exceeded', retryAfter: expect.any(Number) });
    const json = await server.post('/agent').set('Authorization', as(user)).send({ prompt: 'and again', stream: false });
    expect(json.status).toBe(429);
    expect(json.body).toMatchObject({ error: 'usage_limit_exceeded', limit: 'requests' });
    expect(Number(json.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });
});
