import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createStore } from '../../examples/app.js';
import { FakeLlmClient, fakeLlmResources } from '../support/fake-llm.js';
import { EXAMPLE_SERVERS, startExampleServers } from '../../examples/mcp-servers.js';
import { generateSecret, mintToken } from '../../examples/tokens.js';
import type { ContextStore } from '../../src/index.js';

type Servers = Awaited<ReturnType<typeof startExampleServers>>;

const secret = generateSecret();
let servers: Servers;
let server: Server;
let store: ContextStore;
let base: string;

const jitter = () => new Promise<void>((r) => setTimeout(r, Math.random() * 8));
const toolNames = (name: keyof typeof EXAMPLE_SERVERS) => EXAMPLE_SERVERS[name].map((t) => t.name);

function user() {
  const uuid = randomUUID();
  return { uuid, token: mintToken(secret, uuid) };
}

async function call(token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, type, body: type.includes('json') ? (JSON.parse(text) as Record<string, unknown>) : text };
}

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.trim() !== '')
    .map((frame) => {
      const event = /^event: (.*)$/m.exec(frame)?.[1] ?? 'message';
      const data = JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? 'null') as Record<string, unknown>;
      return { event, data };
    });
}

beforeAll(async () => {
  servers = await startExampleServers();
  const mcpServers = new Map([
    ['warehouse', servers.warehouse.url],
    ['crm', servers.crm.url],
  ]);
  // The app's mechanics (sessions, profiles, MCP, SSE) on the in-process fake
  // LLM; test/examples/ai-app.test.ts runs it on real SDK clients.
  const created = createApp({ secret, mcpServers, store: createStore({ resources: fakeLlmResources() }, mcpServers) });
  store = created.store;
  server = created.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await store.close();
  await servers.close();
});

describe('example app: per-user MCP', () => {
  it('each user lists only their own server\'s tools, many users interleaving', async () => {
    const users = Array.from({ length: 12 }, (_, i) => ({ ...user(), server: (i % 2 ? 'crm' : 'warehouse') as 'crm' | 'warehouse' }));
    await Promise.all(users.map(async (u) => {
      await jitter();
      const res = await call(u.token, 'POST', '/configure', { provider: 'Google', model: 'gemini-2.5-flash', mcpServerName: u.server });
      expect(res.status).toBe(200);
    }));
    const results = await Promise.all(users.flatMap((u) => Array.from({ length: 3 }, async () => {
      await jitter();
      return { u, res: await call(u.token, 'GET', '/mcp/tools') };
    })));
    for (const { u, res } of results) {
      expect(res.status).toBe(200);
      const body = res.body as { server: string; tools: { name: string }[] };
      expect(body.server).toBe(u.server);
      expect(body.tools.map((t) => t.name)).toEqual(toolNames(u.server));
    }
    // Queries report the tools of the server the query ran with.
    const q = await call(users[1]!.token, 'POST', '/query', { prompt: 'which tools?' });
    expect(q.body).toMatchObject({ mcpServer: 'crm', tools: toolNames('crm') });
  });

  it('rejects an MCP server that is not in the registry, and a user without one gets no tools', async () => {
    const u = user();
    const bad = await call(u.token, 'POST', '/configure', { mcpServerName: 'http://169.254.169.254/' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'unknown_mcp_server' });
    const none = await call(u.token, 'GET', '/mcp/tools');
    expect(none.body).toEqual({ server: null, tools: [], servers: [] });
  });

  it('a profile can switch the MCP server for one query only', async () => {
    const u = user();
    await call(u.token, 'POST', '/configure', { provider: 'Google', model: 'gemini-2.5-flash', mcpServerName: 'warehouse' });
    const q = await call(u.token, 'POST', '/query', { prompt: 'hi', profile: '@crm' });
    expect(q.body).toMatchObject({ mcpServer: 'crm', tools: toolNames('crm'), profileTag: '@crm', provider: 'Google' });
    const after = await call(u.token, 'GET', '/mcp/tools');
    expect((after.body as { server: string }).server).toBe('warehouse');
  });
});

describe('example app: sessions and profile overrides', () => {
  it('validates query input with clear errors', async () => {
    const u = user();
    await call(u.token, 'POST', '/configure', { provider: 'Google', model: 'gemini-2.5-flash' });
    const cases: [unknown, number, string][] = [
      [{ prompt: 'x', profile: '@nope' }, 400, 'unknown_profile'],
      [{ prompt: 'x', profile: 3 }, 400, 'unknown_profile'],
      [{ prompt: 'x', sessionId: 42 }, 400, 'invalid_session_id'],
      [{ prompt: 'x', sessionId: randomUUID() }, 404, 'session_not_found'],
      [{ prompt: 'x', stream: 'yes' }, 400, 'invalid_stream'],
    ];
    for (const [body, status, error] of cases) {
      const res = await call(u.token, 'POST', '/query', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body).toMatchObject({ error });
      expect(typeof (res.body as { message: unknown }).message).toBe('string');
    }
    const missing = await call(u.token, 'GET', `/sessions/${randomUUID()}`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: 'session_not_found' });
  });

  it('sessions inherit the configuration at creation and record what actually ran, many users interleaving', async () => {
    const profiles: Record<string, [string, string]> = { '@fast': ['Anthropic', 'claude-3-5-haiku'], '@smart': ['Google', 'gemini-2.5-pro'] };
    const users = Array.from({ length: 10 }, (_, i) => ({ ...user(), provider: i % 2 ? 'OpenAI' : 'Ollama', model: `m-${i}` }));
    await Promise.all(users.map((u) => call(u.token, 'POST', '/configure', { provider: u.provider, model: u.model })));
    const sessions = await Promise.all(users.map(async (u) => {
      const res = await call(u.token, 'POST', '/sessions');
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ config: { provider: u.provider, model: u.model }, modelsUsed: [], profileTagsUsed: [] });
      return (res.body as { id: string }).id;
    }));
    const expected = users.map(() => ({ models: new Set<string>(), tags: new Set<string>() }));
    const jobs = users.flatMap((u, i) => Array.from({ length: 6 }, (_, q) => ({ u, i, q })));
    jobs.sort(() => Math.random() - 0.5);
    const failures: string[] = [];
    await Promise.all(jobs.map(async ({ u, i, q }) => {
      await jitter();
      if (q === 3) {
        // The user reconfigures mid-way: the session keeps its captured configuration.
        await call(u.token, 'POST', '/configure', { provider: 'Amazon', model: `later-${i}` });
        return;
      }
      const tag = q % 3 === 0 ? undefined : q % 3 === 1 ? '@fast' : '@smart';
      const [provider, model] = tag === undefined ? [u.provider, u.model] : profiles[tag]!;
      expected[i]!.models.add(`${provider}/${model}`);
      if (tag !== undefined) expected[i]!.tags.add(tag);
      const res = await call(u.token, 'POST', '/query', { prompt: `q${q}`, sessionId: sessions[i], ...(tag ? { profile: tag } : {}) });
      const body = res.body as Record<string, unknown>;
      if (res.status !== 200) failures.push(`${res.status} ${JSON.stringify(body)}`);
      else if (body['user'] !== u.uuid || body['provider'] !== provider || body['model'] !== model
        || !String(body['answer']).startsWith(`[${provider}/${model}]`) || body['profileTag'] !== tag) {
        failures.push(`user ${i} q${q}: expected ${provider}/${model} ${tag}, got ${JSON.stringify(body)}`);
      }
    }));
    expect(failures).toEqual([]);
    await Promise.all(users.map(async (u, i) => {
      const res = await call(u.token, 'GET', `/sessions/${sessions[i]}`);
      expect(res.status).toBe(200);
      const body = res.body as { modelsUsed: string[]; profileTagsUsed: string[]; queries: number; config: Record<string, unknown> };
      expect(new Set(body.modelsUsed)).toEqual(expected[i]!.models);
      expect(new Set(body.profileTagsUsed)).toEqual(expected[i]!.tags);
      expect(body.queries).toBe(5);
      expect(body.config).toMatchObject({ provider: u.provider, model: u.model });
      // The user's own configuration did change; a query without the session runs on it.
      const own = await call(u.token, 'POST', '/query', { prompt: 'now' });
      expect(own.body).toMatchObject({ provider: 'Amazon', model: `later-${i}` });
    }));
    // Another user can neither read nor use the session.
    const other = users[1]!;
    expect((await call(other.token, 'GET', `/sessions/${sessions[0]}`)).status).toBe(404);
    expect((await call(other.token, 'POST', '/query', { prompt: 'x', sessionId: sessions[0] })).status).toBe(404);
  });
});

describe('example app: streaming', () => {
  it('streams SSE with the user\'s context intact in the iterator and the listeners, many users interleaving', async () => {
    const users = Array.from({ length: 10 }, (_, i) => ({ ...user(), provider: i % 2 ? 'Google' : 'Anthropic', model: `s-${i}` }));
    await Promise.all(users.map((u) => call(u.token, 'POST', '/configure', { provider: u.provider, model: u.model })));
    const prompt = 'one two three four five six seven eight';
    const results = await Promise.all(users.flatMap((u, i) => [undefined, '@fast'].map(async (profile) => {
      await jitter();
      const headers: Record<string, string> = i % 2 ? { accept: 'text/event-stream' } : {};
      const body = { prompt, ...(i % 2 ? {} : { stream: true }), ...(profile ? { profile } : {}) };
      return { u, profile, res: await call(u.token, 'POST', '/query', body, headers) };
    })));
    for (const { u, profile, res } of results) {
      expect(res.status).toBe(200);
      expect(res.type).toContain('text/event-stream');
      const events = parseSse(res.body as string);
      const [provider, model] = profile ? ['Anthropic', 'claude-3-5-haiku'] : [u.provider, u.model];
      expect(events[0]).toEqual({ event: 'meta', data: { user: u.uuid, provider, model, ...(profile ? { profileTag: profile } : {}) } });
      const tokens = events.filter((e) => e.event === 'token');
      expect(tokens.length).toBe(9);
      tokens.forEach((t, index) => expect(t.data).toMatchObject({ index, user: u.uuid, model }));
      expect(tokens[0]!.data['text']).toBe(`[${provider}/${model}]`);
      expect(events.at(-1)).toEqual({ event: 'done', data: { answer: `[${provider}/${model}] ${prompt}`, tokens: 9 } });
    }
  });

  it('a stream that cannot start answers with a JSON error', async () => {
    const u = user();
    const res = await call(u.token, 'POST', '/query', { prompt: 'x', stream: true });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: 'not_configured' });
  });

  it('a client that disconnects mid-stream aborts that user\'s LLM call only', async () => {
    const a = user();
    const b = user();
    await call(a.token, 'POST', '/configure', { provider: 'Google', model: 'abort-a' });
    await call(b.token, 'POST', '/configure', { provider: 'Google', model: 'abort-b' });
    const llmOf = (uuid: string) => store.resource(store.currentGeneration(uuid), 'llmInstance') as FakeLlmClient;
    const baseline = store.scopesInFlight;
    const long = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');
    const controller = new AbortController();
    const streamA = await fetch(`${base}/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: long, stream: true }),
      signal: controller.signal,
    });
    const streamB = call(b.token, 'POST', '/query', { prompt: 'short answer please', stream: true });
    const reader = streamA.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('event: meta');
    controller.abort();
    await reader.closed.catch(() => undefined);
    const until = Date.now() + 3000;
    while (llmOf(a.uuid).aborted === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(llmOf(a.uuid).aborted).toBe(1);
    const resB = await streamB;
    expect(parseSse(resB.body as string).at(-1)!.event).toBe('done');
    expect(llmOf(b.uuid).aborted).toBe(0);
    while (store.scopesInFlight > baseline && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(store.scopesInFlight).toBe(baseline);
  });
});
