/**
 * examples/frameworks/openai-agents.ts under concurrency: one agent, its
 * tools, one runner with a model provider, run hooks and a tracing processor,
 * all defined once; the real OpenAI client of the SDK against the wire server
 * (Responses API, its default, and chat completions), the MCP project's
 * server-everything over Streamable HTTP (a session per user). Every tool
 * execution, hook, span and LLM call belongs to the user who asked.
 */
import { BatchTraceProcessor, setTraceProcessors, type Span, type Trace, type TracingExporter } from '@openai/agents';
import { describe, expect, it } from 'vitest';
import { currentUserUuid } from '../src/index.js';
import { askAll, demoUsers, expectedQuotes, runFrameworkDemo, wireByUser } from '../examples/frameworks/demo.js';
import { ask, hookReads, openAIProviderSpec, spanLedger } from '../examples/frameworks/openai-agents.js';
import { frameworkServers } from './support/frameworks.js';

const servers = frameworkServers(() => {
  hookReads.length = 0;
});

describe('OpenAI Agents SDK (examples/frameworks/openai-agents.ts)', { timeout: 90_000 }, () => {
  it.each([
    { api: 'Responses', useResponses: true, format: 'responses' },
    { api: 'chat completions', useResponses: false, format: 'openai' },
  ])('24 users at once on the $api API: own answers, tool results, key and model on every LLM call, hooks and spans read their run’s user', async ({ useResponses, format }) => {
    const store = servers.newStore((wire) => openAIProviderSpec(`${wire}/openai/v1`, useResponses));
    const users = demoUsers(24);
    const answers = await askAll(store, users, ask);

    users.forEach((user, i) => {
      for (const quote of expectedQuotes(user)) expect(answers[i]).toContain(quote);
    });
    const { perUser, wrong, unattributed } = wireByUser(servers.wire.calls, users);
    expect(wrong).toEqual([]);
    expect(unattributed).toEqual([]);
    for (const user of users) {
      const calls = perUser.get(user.uuid)!;
      expect(calls.map((c) => c.format)).toEqual([format, format, format]);
      expect(calls.map((c) => c.toolCall?.name ?? 'text')).toEqual(['echo', 'whoami', 'text']);
      for (const call of calls) expect([...call.toolsOffered].sort()).toEqual(['echo', 'whoami']);
      expect(calls.at(-1)!.toolResults.map((r) => r.text)).toEqual([`Echo: ${user.uuid}`, `${user.uuid} on OpenAI/${user.model}`]);
    }

    // Per user: 2 tool ends and 1 agent end (run hooks), 2 function spans (tracing processor).
    const count = (event: string) => hookReads.filter((r) => r.event === event).length;
    expect([count('agent_tool_end'), count('agent_end'), count('span_end:function')]).toEqual([48, 24, 48]);
    const models = new Map(users.map((u) => [u.uuid, u.model]));
    for (const read of hookReads) {
      expect(read.runUser, read.event).toBeDefined();
      expect(read.user, `${read.event} of ${read.runUser}`).toBe(read.runUser);
      expect(read.model).toBe(models.get(read.runUser!));
    }
  });

  it('the example’s own demo (npx tsx examples/frameworks/openai-agents.ts) passes: three users, server-everything over stdio', async () => {
    expect(await runFrameworkDemo('OpenAI Agents', (wire) => openAIProviderSpec(`${wire}/openai/v1`), ask)).toBe(true);
  });

  it('a batching trace exporter (registered once) gets several users’ spans per batch, and runs in one user’s scope at best: it reads the user from the trace metadata instead', async () => {
    const store = servers.newStore((wire) => openAIProviderSpec(`${wire}/openai/v1`));
    const users = demoUsers(20);
    const traceUser = new Map<string, string>();
    const batches: Array<{ scopeUser: string | undefined; spanUsers: Set<string>; functionSpans: number; metadataMismatches: number }> = [];
    const exporter: TracingExporter = {
      async export(items) {
        let metadataMismatches = 0;
        let functionSpans = 0;
        const spanUsers = new Set<string>();
        for (const item of items) {
          if (item.type === 'trace') traceUser.set((item as Trace).traceId, String((item as Trace).metadata?.['user']));
          if (item.type !== 'trace.span') continue;
          const span = item as Span<any>;
          const data = span.spanData as { type: string; output?: string };
          if (data.type !== 'function') continue;
          functionSpans++;
          const owner = users.find((u) => data.output?.includes(u.uuid))!.uuid;
          spanUsers.add(owner);
          if (traceUser.get(span.traceId) !== owner) metadataMismatches++;
        }
        batches.push({ scopeUser: currentUserUuid(), spanUsers, functionSpans, metadataMismatches });
      },
    };
    // Exports inline once 16 items wait (80 % of 20), as a busy server's would.
    const batch = new BatchTraceProcessor(exporter, { maxQueueSize: 20, maxBatchSize: 20, scheduleDelay: 60_000 });
    setTraceProcessors([spanLedger, batch]);
    try {
      await askAll(store, users, ask);
      await batch.forceFlush();
    } finally {
      await batch.shutdown();
      setTraceProcessors([spanLedger]);
    }
    expect(batches.reduce((n, b) => n + b.functionSpans, 0)).toBe(40);
    // Inline exports ran inside one user's request, with other users' spans in the batch.
    const mixed = batches.filter((b) => b.scopeUser !== undefined && [...b.spanUsers].some((u) => u !== b.scopeUser));
    console.log(`Agents SDK batch exporter: ${batches.length} batches, ${mixed.length} exported inside one user's scope with other users' spans`);
    expect(mixed.length).toBeGreaterThan(0);
    // The trace's metadata names each span's user.
    expect(batches.reduce((n, b) => n + b.metadataMismatches, 0)).toBe(0);
  });
});
