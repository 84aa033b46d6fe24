/**
 * examples/frameworks/langgraph.ts under concurrency: one LangChain v1
 * `createAgent` (LangGraph ReAct) for all users, real ChatOpenAI against the
 * wire server, the MCP project's server-everything over Streamable HTTP (a
 * session per user). Every tool execution, every callback and every LLM call
 * belongs to the user who asked. And the measured case: LangChain's
 * background callback queue runs an unbound handler as another user; bound
 * with bindHandlerToCurrentUser() (or with awaitHandlers) never.
 */
import { awaitAllCallbacks } from '@langchain/core/callbacks/promises';
import { describe, expect, it } from 'vitest';
import { askAll, demoUsers, runFrameworkDemo, expectedQuotes, wireByUser, type DemoUser } from '../examples/frameworks/demo.js';
import { ask, askWithMcpAdapters, chatModelSpec, UsageHandler, type CallbackRead } from '../examples/frameworks/langgraph.js';
import { frameworkServers } from './support/frameworks.js';

const servers = frameworkServers();
const newStore = () => servers.newStore((wire) => chatModelSpec(`${wire}/openai/v1`));

/** Reads whose getters answered for another user than the one whose run it was. */
const crossUser = (reads: readonly CallbackRead[]) => reads.filter((r) => r.user !== r.taggedUser);

function expectOwnModels(reads: readonly CallbackRead[], users: readonly DemoUser[]) {
  const models = new Map(users.map((u) => [u.uuid, u.model]));
  for (const read of reads) expect(read.model, `${read.event} of ${read.taggedUser}`).toBe(models.get(read.taggedUser!));
}

describe('LangGraph agent (examples/frameworks/langgraph.ts)', { timeout: 90_000 }, () => {
  it('24 users at once: each answer quotes its own tool results, every LLM call carries its user’s key and model, every bound callback reads its user', async () => {
    const store = newStore();
    const users = demoUsers(24);
    const handler = new UsageHandler(30);
    const answers = await askAll(store, users, (prompt) => ask(prompt, handler));
    await awaitAllCallbacks();

    users.forEach((user, i) => {
      for (const quote of expectedQuotes(user)) expect(answers[i]).toContain(quote);
    });
    const { perUser, wrong, unattributed } = wireByUser(servers.wire.calls, users);
    expect(wrong).toEqual([]);
    expect(unattributed).toEqual([]);
    for (const user of users) {
      const calls = perUser.get(user.uuid)!;
      // echo, whoami, then the final text; tools offered on every call.
      expect(calls.map((c) => c.toolCall?.name ?? 'text')).toEqual(['echo', 'whoami', 'text']);
      for (const call of calls) expect([...call.toolsOffered].sort()).toEqual(['echo', 'whoami']);
      expect(calls.at(-1)!.toolResults.map((r) => r.text)).toEqual([`Echo: ${user.uuid}`, `${user.uuid} on OpenAI/${user.model}`]);
    }
    // 3 model calls and 2 tool runs per user, each handled as its own user.
    expect(handler.reads.filter((r) => r.event === 'llmEnd')).toHaveLength(72);
    expect(handler.reads.filter((r) => r.event === 'toolEnd')).toHaveLength(48);
    expect(crossUser(handler.reads)).toEqual([]);
    expectOwnModels(handler.reads, users);
  });

  it('the example’s own demo (npx tsx examples/frameworks/langgraph.ts) passes: three users, server-everything over stdio', async () => {
    expect(await runFrameworkDemo('LangGraph', (wire) => chatModelSpec(`${wire}/openai/v1`), ask)).toBe(true);
  });

  it('with @langchain/mcp-adapters tools converted per request from the user’s own connection: 16 users, each answer quotes its own echo, every LLM call its own key and model', async () => {
    const store = newStore();
    const users = demoUsers(16);
    const answers = await askAll(store, users, (prompt) => askWithMcpAdapters(prompt.replace(' then call whoami', '')));
    users.forEach((user, i) => expect(answers[i]).toContain(`everything__echo → Echo: ${user.uuid}`));
    const { perUser, wrong, unattributed } = wireByUser(servers.wire.calls, users);
    expect(wrong).toEqual([]);
    expect(unattributed).toEqual([]);
    for (const user of users) {
      const calls = perUser.get(user.uuid)!;
      expect(calls.map((c) => c.toolCall?.name ?? 'text')).toEqual(['everything__echo', 'text']);
      // server-everything's own catalog, converted and prefixed by the adapters.
      expect(calls[0]!.toolsOffered).toContain('everything__get-env');
    }
  });

  describe('callback handlers in LangChain’s default background mode, under load (handlers taking 0–30 ms), 20 users', () => {
    const oneTool = (prompt: string) => prompt.replace(' then call whoami', '');

    async function measure(mode: 'unbound' | 'awaitHandlers' | 'bound') {
      const store = newStore();
      const users = demoUsers(20);
      const handler = new UsageHandler(30);
      if (mode === 'awaitHandlers') handler.awaitHandlers = true;
      expect(handler.awaitHandlers).toBe(mode === 'awaitHandlers');
      await askAll(store, users, (prompt) => ask(oneTool(prompt), handler, mode === 'bound'));
      await awaitAllCallbacks();
      const llmEnd = handler.reads.filter((r) => r.event === 'llmEnd');
      const toolEnd = handler.reads.filter((r) => r.event === 'toolEnd');
      expect(llmEnd).toHaveLength(40);
      expect(toolEnd).toHaveLength(20);
      expect(wireByUser(servers.wire.calls, users).wrong).toEqual([]);
      const right = { llmEnd: llmEnd.length - crossUser(llmEnd).length, toolEnd: toolEnd.length - crossUser(toolEnd).length };
      console.log(`LangChain callbacks, ${mode}: handleLLMEnd ${right.llmEnd}/40 and handleToolEnd ${right.toolEnd}/20 read their own user`);
      const ids = new Set(users.map((u) => u.uuid));
      const otherUser = crossUser(handler.reads).filter((r) => r.user !== undefined && ids.has(r.user)).length;
      return { handler, users, right, otherUser };
    }

    it('unbound: handlers read ANOTHER user (the cross-user read this library must prevent)', async () => {
      const { right, otherUser } = await measure('unbound');
      // Measured: 1–2 of 40 handleLLMEnd and 0–1 of 20 handleToolEnd right, on Node 20, 22, 24 and 26.
      expect(right.llmEnd + right.toolEnd).toBeLessThan(60);
      // Not "no user": the getters answered for another of the users, in clear.
      expect(otherUser).toBe(60 - right.llmEnd - right.toolEnd);
    });

    it('awaitHandlers = true: every handler reads its own user (the run waits for them)', async () => {
      const { handler, users, right } = await measure('awaitHandlers');
      expect(right).toEqual({ llmEnd: 40, toolEnd: 20 });
      expectOwnModels(handler.reads, users);
    });

    it('bindHandlerToCurrentUser(handler): every handler reads its own user, still in the background', async () => {
      const { handler, users, right } = await measure('bound');
      expect(right).toEqual({ llmEnd: 40, toolEnd: 20 });
      expectOwnModels(handler.reads, users);
      expect(handler.awaitHandlers).toBe(false);
    });
  });
});
