/**
 * LangChain.js v1 / LangGraph: one ReAct agent (`createAgent` from
 * `langchain`, the LangGraph-built successor of `createReactAgent`) and its
 * tools, defined once at module level for every user. Inside the agent the
 * no-argument getters answer for the user whose request runs it:
 *
 * - a middleware swaps in the user's own chat model, `getUserLlmInstance()`
 *   (a `ChatOpenAI` the store builds per configuration with the user's key and
 *   model, see `chatModelSpec`);
 * - the tools call the user's own MCP server with `callUserMcpTool()` and read
 *   `getUserProvider()` / `getUserModel()`;
 * - the callback handler (per-user accounting) is shared too, and bound to the
 *   user per request with `bindHandlerToCurrentUser()`: LangChain runs
 *   handlers from one background queue, where the async context is another
 *   user's (docs/agents-frameworks.md).
 *
 * `npx tsx examples/frameworks/langgraph.ts` runs three users at once against
 * the wire server and the MCP project's server-everything over stdio.
 */
import { pathToFileURL } from 'node:url';
import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import type { LLMResult } from '@langchain/core/outputs';
import { loadMcpTools } from '@langchain/mcp-adapters';
import { ChatOpenAI } from '@langchain/openai';
import { createAgent, createMiddleware, tool } from 'langchain';
import * as z from 'zod';
import {
  bindHandlerToCurrentUser,
  currentUserUuid,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  type ResourceSpec,
} from '../../src/index.js';
import { callUserMcpTool, getUserMcpConnections } from '../../src/mcp.js';
import { runFrameworkDemo, toolText } from './demo.js';

/** The user's chat model, built by the store per configuration (key, model) and pointed at `baseURL`. */
export function chatModelSpec(baseURL: string): ResourceSpec<ChatOpenAI> {
  return {
    create: (config) =>
      new ChatOpenAI({ model: config.model ?? 'gpt-4o-mini', apiKey: config.llmCredentials?.apiKey ?? '', configuration: { baseURL } }),
  };
}

// Tools: defined once; each call reads the user it runs for.
export const echo = tool(
  async ({ message }) => toolText(await callUserMcpTool('echo', { message })),
  { name: 'echo', description: "Echoes a message through the user's MCP server.", schema: z.object({ message: z.string() }) },
);
export const whoami = tool(
  async () => `${currentUserUuid()} on ${getUserProvider()}/${getUserModel()}`,
  { name: 'whoami', description: 'Names the user and their model.', schema: z.object({}) },
);

/** Every model call runs on the current user's own chat model. */
const userModel = createMiddleware({
  name: 'UserModel',
  wrapModelCall: (request, handler) => handler({ ...request, model: getUserLlmInstance() as ChatOpenAI }),
});

export const agent = createAgent({
  // Never called: the middleware replaces it with the user's model on every call.
  model: new ChatOpenAI({ model: 'no-user-model', apiKey: 'no-user-key', configuration: { baseURL: 'http://127.0.0.1:9/v1' } }),
  tools: [echo, whoami],
  middleware: [userModel],
});

/** What a callback saw: the user the getters answered for, and the user the run was tagged with. */
export interface CallbackRead {
  readonly event: 'llmEnd' | 'toolEnd';
  /** `currentUserUuid()` inside the handler. */
  readonly user: string | undefined;
  /** `getUserModel()` inside the handler. */
  readonly model: string | null | undefined;
  /** The user of the request that ran the agent (its `user:` tag). */
  readonly taggedUser: string | undefined;
}

const taggedUser = (tags: string[] | undefined): string | undefined => tags?.find((t) => t.startsWith('user:'))?.slice(5);

/** Per-user accounting, shared by all users; pass it bound to the user (`bindHandlerToCurrentUser`). */
export class UsageHandler extends BaseCallbackHandler {
  name = 'usage';
  readonly reads: CallbackRead[] = [];
  /** Simulated work (a write to a usage table), ms: random below this bound. */
  constructor(readonly workMs = 0) {
    super();
  }
  override async handleLLMEnd(_output: LLMResult, _runId: string, _parentRunId?: string, tags?: string[]): Promise<void> {
    await work(this.workMs);
    this.reads.push({ event: 'llmEnd', user: currentUserUuid(), model: getUserModel(), taggedUser: taggedUser(tags) });
  }
  override async handleToolEnd(_output: unknown, _runId: string, _parentRunId?: string, tags?: string[]): Promise<void> {
    await work(this.workMs);
    this.reads.push({ event: 'toolEnd', user: currentUserUuid(), model: getUserModel(), taggedUser: taggedUser(tags) });
  }
}

export const usage = new UsageHandler();

/**
 * Runs the agent for the current user; the answer's text. `handler` is bound
 * to the user unless `bind` is false (to show what goes wrong then).
 */
export async function ask(prompt: string, handler: BaseCallbackHandler = usage, bind = true): Promise<string> {
  const result = await agent.invoke(
    { messages: [{ role: 'user', content: prompt }] },
    { callbacks: [bind ? bindHandlerToCurrentUser(handler) : handler], tags: [`user:${currentUserUuid()}`], recursionLimit: 12 },
  );
  const last = result.messages.at(-1);
  return typeof last?.content === 'string' ? last.content : JSON.stringify(last?.content ?? '');
}

/**
 * The alternative with `@langchain/mcp-adapters`: its tools are bound to one
 * SDK client when converted, so they are converted per request from the
 * user's own connections (every server of theirs, names prefixed
 * `<server>__`), and the agent is built per request around them (with the
 * user's model, no middleware needed).
 */
export async function askWithMcpAdapters(prompt: string): Promise<string> {
  const connections = await getUserMcpConnections();
  const tools = (
    await Promise.all(connections.map(async (c) => loadMcpTools(c.serverName, await c.client(), { prefixToolNameWithServerName: true })))
  ).flat();
  const perRequest = createAgent({ model: getUserLlmInstance() as ChatOpenAI, tools });
  const result = await perRequest.invoke({ messages: [{ role: 'user', content: prompt }] }, { recursionLimit: 12 });
  const last = result.messages.at(-1);
  return typeof last?.content === 'string' ? last.content : JSON.stringify(last?.content ?? '');
}

function work(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, Math.random() * ms)) : Promise.resolve();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const ok = await runFrameworkDemo('LangGraph', (wire) => chatModelSpec(`${wire}/openai/v1`), ask);
  process.exitCode = ok ? 0 : 1;
}
