/**
 * The example app's POST /agent over real HTTP: the user's LLM (real AI SDK
 * providers against the wire server) runs a multi-step loop on the user's
 * MCP servers; the JSON names the tools called and the server that ran each;
 * SSE streams tool-call and tool-result events; a client that disconnects
 * mid tool call cancels it on the MCP server and leaves the connection
 * usable; a dead server is a tool error in a 200, never a 500.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type ExampleApp } from '../../examples/app.js';
import { EXAMPLE_SERVERS, startMcpServer, type RunningMcpServer } from '../../examples/mcp-servers.js';
import { exampleLlmRegistry } from '../../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../../examples/providers/wire-server.js';
import { generateSecret, mintToken } from '../../examples/tokens.js';
import { until } from '../support/mcp-reference.js';

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

let wire: WireServer;
let warehouse: RunningMcpServer;
let crm: RunningMcpServer;
let doomed: RunningMcpServer;
let example: ExampleApp;
let server: Server;
let base: string;
const secret = generateSecret();

beforeAll(async () => {
  [wire, warehouse, crm, doomed] = await Promise.all([
    startWireServer({ tokenDelayMs: 1 }),
    startMcpServer('warehouse', [...EXAMPLE_SERVERS.warehouse, { name: 'slow_query', description: 'Takes 3 s.', delayMs: 3_000 }]),
    startMcpServer('crm', EXAMPLE_SERVERS.crm),
    startMcpServer('doomed', [{ name: 'ping', description: 'Pings.' }]),
  ]);
  const perUser = (s: RunningMcpServer) => (_config: unknown, userUuid: string) => ({ url: s.url, headers: { 'x-user': userUuid } });
  example = createApp({
    secret,
    llms: exampleLlmRegistry(wire.url),
    mcpServers: new Map([['warehouse', perUser(warehouse)], ['crm', perUser(crm)], ['doomed', perUser(doomed)]]),
  });
  server = example.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 30_000);

afterAll(async () => {
  server?.close();
  await example?.store.close();
  await Promise.all([wire, warehouse, crm, doomed].map((s) => s?.close()));
});

async function user(provider: string, model: string, mcpServerNames: string[]) {
  const uuid = randomUUID();
  const token = mintToken(secret, uuid);
  const key = `sk-${randomUUID()}`;
  const res = await post(token, '/configure', { provider, model, llmCredentials: { apiKey: key }, mcpServerNames });
  expect(res.status).toBe(200);
  return { uuid, token, key };
}

function post(token: string, path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(base + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...init,
  });
}

/** Parses an SSE body into [event, data] pairs. */
function events(text: string): Array<[string, Record<string, unknown>]> {
  return text.split('\n\n').filter(Boolean).map((frame) => {
    const event = /^event: (.+)$/m.exec(frame)?.[1] ?? '';
    const data = /^data: (.+)$/m.exec(frame)?.[1] ?? 'null';
    return [event, JSON.parse(data) as Record<string, unknown>];
  });
}

describe('POST /agent', { timeout: 30_000 }, () => {
  it('GET /mcp/tools lists the tools of every server the user picked, in their order (the first one\'s also as server and tools)', async () => {
    const u = await user('OpenAI', 'gpt-4o-mini', ['crm', 'warehouse']);
    const res = await fetch(`${base}/mcp/tools`, { headers: { authorization: `Bearer ${u.token}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { server: string; tools: { name: string }[]; servers: { server: string; tools: { name: string }[] }[] };
    const names = (tools: { name: string }[]) => tools.map((t) => t.name).sort();
    expect(body.servers.map((s) => s.server)).toEqual(['crm', 'warehouse']);
    expect(names(body.servers[0]!.tools)).toEqual(EXAMPLE_SERVERS.crm.map((t) => t.name).sort());
    expect(names(body.servers[1]!.tools)).toEqual([...EXAMPLE_SERVERS.warehouse.map((t) => t.name), 'slow_query'].sort());
    expect({ server: body.server, tools: names(body.tools) }).toEqual({ server: 'crm', tools: names(body.servers[0]!.tools) });
  });

  it('JSON: a 3-step loop on two of the user\'s servers names each tool called and the server that ran it', async () => {
    const u = await user('Anthropic', 'claude-3-5-haiku', ['warehouse', 'crm']);
    const res = await post(u.token, '/agent', { prompt: `call warehouse__run_sql {"input":"${u.uuid}"} then call crm__find_customer {"input":"ada"}` });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body['toolCalls']).toEqual([
      { tool: 'warehouse__run_sql', server: 'warehouse', ok: true },
      { tool: 'crm__find_customer', server: 'crm', ok: true },
    ]);
    expect(body['steps']).toBe(3);
    expect(body['answer']).toContain(`warehouse.run_sql(${u.uuid})`);
    expect(body['answer']).toContain(`key:${keyFingerprint(u.key)}`);
    expect(body['toolsOffered']).toEqual(['warehouse__list_tables', 'warehouse__run_sql', 'warehouse__slow_query', 'crm__find_customer', 'crm__open_ticket']);
    expect(warehouse.toolCalls.filter((c) => c.user === u.uuid).map((c) => c.input)).toEqual([u.uuid]);
  });

  it('SSE: meta, tool-call, tool-result, tokens and done, in order', async () => {
    const u = await user('Google', 'gemini-2.5-flash', ['crm']);
    const res = await post(u.token, '/agent', { prompt: 'call crm__find_customer {"input":"bob"}', stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const got = events(await res.text());
    const kinds = got.map(([e]) => e).filter((e, i, all) => e !== 'token' || all[i - 1] !== 'token');
    expect(kinds).toEqual(['meta', 'tool-call', 'tool-result', 'token', 'done']);
    expect(got[1]![1]).toMatchObject({ tool: 'crm__find_customer', server: 'crm', input: { input: 'bob' } });
    expect(got[2]![1]).toMatchObject({ tool: 'crm__find_customer', text: 'crm.find_customer(bob)' });
    expect(got.at(-1)![1]).toMatchObject({ steps: 2, toolCalls: [{ tool: 'crm__find_customer', server: 'crm', ok: true }] });
  });

  it('a client that disconnects mid tool call cancels the call on the MCP server; the next request runs on the same connection', async () => {
    const u = await user('OpenAI', 'gpt-4o-mini', ['warehouse']);
    const controller = new AbortController();
    const served = warehouse.toolCalls.length;
    const calls = wire.calls.length;
    const res = await post(u.token, '/agent', { prompt: 'call warehouse__slow_query {"input":"long"}', stream: true }, { signal: controller.signal });
    const reading = res.text().catch(() => 'aborted');
    await until(() => warehouse.toolCalls.length > served, 5_000, 'the slow call to reach the server');
    controller.abort();
    expect(await reading).toBe('aborted');
    const call = warehouse.toolCalls[served]!;
    await until(() => call.cancelled, 3_000, 'the MCP server to be told');
    expect(wire.calls.length - calls).toBe(1);
    const next = await post(u.token, '/agent', { prompt: 'call warehouse__list_tables {"input":"after"}' });
    expect(next.status).toBe(200);
    expect(((await next.json()) as { answer: string }).answer).toContain('warehouse.list_tables(after)');
    expect(new Set(warehouse.toolCalls.filter((c) => c.user === u.uuid).map((c) => c.sessionId)).size).toBe(1);
  });

  it('an MCP server that dies: a tool error (or its tools left out) in a 200 while others serve, a 502 with a code when none does; never a 500', async () => {
    const u = await user('OpenAI', 'gpt-4o-mini', ['crm', 'doomed']);
    const first = await post(u.token, '/agent', { prompt: 'call doomed__ping' });
    expect(((await first.json()) as { toolCalls: unknown }).toolCalls).toEqual([{ tool: 'doomed__ping', server: 'doomed', ok: true }]);
    await doomed.close();
    const res = await post(u.token, '/agent', { prompt: 'call crm__find_customer {"input":"z"} then call doomed__ping' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { toolCalls: Array<{ tool: string; ok: boolean }>; answer: string };
    expect(body.toolCalls[0]).toEqual({ tool: 'crm__find_customer', server: 'crm', ok: true });
    expect(body.answer).toContain('crm.find_customer(z)');
    // doomed__ping failed as a tool error, or the dead server's tools were left out of this request's set.
    expect(body.answer).toMatch(/doomed__ping → .*could not be reached \(ERR_MCP_|no tool named doomed__ping was offered/);
    const alone = await user('OpenAI', 'gpt-4o-mini', ['doomed']);
    const down = await post(alone.token, '/agent', { prompt: 'call doomed__ping' });
    expect(down.status).toBe(502);
    expect(await down.json()).toMatchObject({ error: 'mcp_unavailable' });
    // GET /mcp/tools by the same rule: the servers that list, the dead one with its error code; 502/503 when none can.
    const listed = await fetch(`${base}/mcp/tools`, { headers: { authorization: `Bearer ${u.token}` } });
    expect(listed.status).toBe(200);
    const catalog = (await listed.json()) as { servers: Array<{ server: string; tools: unknown[]; error?: { code: string; message: string } }> };
    expect(catalog.servers.map((s) => [s.server, s.tools.length, s.error?.code.startsWith('ERR_MCP_') ?? false])).toEqual([
      ['crm', EXAMPLE_SERVERS.crm.length, false],
      ['doomed', 0, true],
    ]);
    const none = await fetch(`${base}/mcp/tools`, { headers: { authorization: `Bearer ${alone.token}` } });
    const noneBody = (await none.json()) as { error: string };
    expect([none.status, noneBody.error]).toEqual(none.status === 502 ? [502, 'mcp_unavailable'] : [503, 'mcp_backoff']);
    const bad = await post(u.token, '/configure', { mcpServerNames: ['warehouse', 'nope'] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'unknown_mcp_server' });
  });
});
