/**
 * Limits inside an agent loop, on the real AI SDK against the wire server's
 * tool calls: a loop that asks for more tool calls than `toolCallsPerLoop`
 * ends with `UsageLimitExceededError` as its last event (generateText rejects
 * with it; streamText's last event before the SDK's closing finish-step/finish), the extra tool call
 * never runs, and the next loop of the same user starts afresh; a step's
 * tokens are booked even when the step is refused.
 */
import { randomUUID } from 'node:crypto';
import { jsonSchema, stepCountIs, tool, type ToolSet } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { EXAMPLE_SERVERS, startMcpServer, type RunningMcpServer } from '../examples/mcp-servers.js';
import { getUserLlm, getUserTools } from '../src/ai.js';
import { configureUser, runAsUser, UsageLimitExceededError, type ContextPatch } from '../src/index.js';
import { createMcpClientFactory } from '../src/mcp.js';
import { createUsageMeter, MemoryUsageBackend, setDefaultUsageMeter, type UsageMeter } from '../src/usage.js';
import { useStores } from './support/stores.js';

let wire: WireServer;
beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 1 });
});
afterAll(async () => {
  await wire.close();
});
beforeEach(() => wire.reset());
const newStore = useStores();

/** A tool that counts its runs through the meter's hook, as the MCP tool bridge does. */
function lookup(meter: UsageMeter, ran: string[]): ToolSet {
  return {
    lookup: tool({
      description: 'Looks a word up.',
      inputSchema: jsonSchema<{ word: string }>({ type: 'object', properties: { word: { type: 'string' } }, required: ['word'] }),
      execute: async ({ word }) => {
        ran.push(word);
        meter.recordToolCall('dictionary', { ok: true });
        return `definition of ${word}`;
      },
    }),
  };
}

const THREE_CALLS = 'call lookup {"word":"a"} call lookup {"word":"b"} call lookup {"word":"c"}';
const PATCHES: Array<[string, (apiKey: string) => ContextPatch]> = [
  ['OpenAI', (apiKey) => ({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey } })],
  ['Anthropic', (apiKey) => ({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey } })],
];

describe.each(PATCHES)('%s: tool calls per loop', (_name, patch) => {
  it.each([false, true])('streamed=%s: the third tool call of a loop limited to 2 ends the loop with the refusal; the tool runs twice', async (streamed) => {
    const meter = createUsageMeter({ backend: new MemoryUsageBackend(), limits: { toolCallsPerLoop: 2 } });
    const store = newStore({ resources: { llmInstance: exampleLlmRegistry(wire.url, { usage: meter }).resource() } });
    const user = randomUUID();
    const key = `loop-${randomUUID()}`;
    const ran: string[] = [];
    const outcome = await runAsUser(user, async () => {
      await configureUser(patch(key));
      const llm = (await getUserLlm())!;
      const options = { prompt: THREE_CALLS, tools: lookup(meter, ran), stopWhen: stepCountIs(10), maxRetries: 0 };
      if (!streamed) return llm.generateText(options).then(() => 'finished', (e: unknown) => e);
      const parts: Array<{ type: string; error?: unknown }> = [];
      for await (const part of llm.streamText({ ...options, onError: () => {} }).fullStream) parts.push(part);
      // The refusal is the loop's last event; the SDK only closes the step and the stream after it.
      const at = parts.findIndex((p) => p.type === 'error');
      expect(parts.slice(at + 1).map((p) => p.type)).toEqual(['finish-step', 'finish']);
      return parts[at]!.error;
    }, { store });
    expect(outcome).toBeInstanceOf(UsageLimitExceededError);
    expect(outcome).toMatchObject({ limit: 'toolCalls', status: 429 });
    expect(ran).toEqual(['a', 'b']);
    // Three model calls went out (the third asked for tool call "c"); no fourth.
    const calls = wire.calls.filter((c) => c.keyHash === keyFingerprint(key));
    expect(calls).toHaveLength(3);
    const usage = await meter.read(user);
    expect(usage.calls).toBe(3);
    expect(usage.inputTokens + usage.outputTokens).toBe(calls.reduce((s, c) => s + c.usage!.inputTokens + c.usage!.outputTokens, 0));
    expect(usage.limited).toEqual({ toolCalls: 1 });
    expect(usage.tools).toEqual([{ server: 'dictionary', calls: 2, errors: 0 }]);
    expect(usage.inFlight).toBe(0);

    // The limit is per loop: the next loop of the same user runs its two tool calls.
    ran.length = 0;
    const next = await runAsUser(user, async () => {
      const llm = (await getUserLlm())!;
      const { text } = await llm.generateText({ prompt: 'call lookup {"word":"d"} call lookup {"word":"e"}', tools: lookup(meter, ran), stopWhen: stepCountIs(10) });
      return text;
    }, { store });
    expect(ran).toEqual(['d', 'e']);
    expect(next).toContain('definition of e');
  });
});

describe('tool calls per MCP server, counted by the real tool bridge (getUserTools)', () => {
  it('10 users × loops on their own MCP connections: each user is booked exactly the tool calls their server saw from them', async () => {
    const [warehouse, crm] = await Promise.all([startMcpServer('warehouse', EXAMPLE_SERVERS.warehouse), startMcpServer('crm', EXAMPLE_SERVERS.crm)]);
    const perUser = (server: RunningMcpServer) => (_config: unknown, userUuid: string) => ({ url: server.url, headers: { 'x-user': userUuid } });
    const mcp = createMcpClientFactory({ servers: { warehouse: perUser(warehouse), crm: perUser(crm) } });
    const meter = createUsageMeter({ backend: new MemoryUsageBackend() });
    const previous = setDefaultUsageMeter(meter);
    const store = newStore({ resources: { mcpClient: mcp, llmInstance: exampleLlmRegistry(wire.url, { usage: meter }).resource() } });
    try {
      const users = Array.from({ length: 10 }, (_, i) => ({ uuid: randomUUID(), key: `t${i}-${randomUUID()}`, queries: 1 + (i % 3) }));
      await Promise.all(users.map((u) => runAsUser(u.uuid, async () => {
        await configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey: u.key }, mcpServerNames: ['warehouse', 'crm'] });
        const llm = (await getUserLlm())!;
        for (let q = 0; q < u.queries; q++) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 10));
          await llm.generateText({ prompt: `call warehouse__run_sql {"input":"${q}"} then call crm__find_customer {"input":"${q}"}`, tools: await getUserTools(), stopWhen: stepCountIs(4) });
        }
      }, { store })));
      await meter.flush();
      for (const u of users) {
        const usage = await meter.read(u.uuid);
        const seen = (server: RunningMcpServer) => server.toolCalls.filter((c) => c.user === u.uuid).length;
        expect(seen(warehouse)).toBe(u.queries);
        expect(usage.tools).toEqual([{ server: 'crm', calls: seen(crm), errors: 0 }, { server: 'warehouse', calls: seen(warehouse), errors: 0 }]);
        expect(usage.toolCalls).toBe(2 * u.queries);
        expect(usage.calls).toBe(wire.calls.filter((c) => c.keyHash === keyFingerprint(u.key)).length);
      }
    } finally {
      if (previous !== undefined) setDefaultUsageMeter(previous);
      await store.close();
      await mcp.settle();
      await Promise.all([warehouse.close(), crm.close()]);
    }
  });
});
