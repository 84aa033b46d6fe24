/**
 * The OpenAI Agents SDK (`@openai/agents`): one agent, its tools and one
 * runner, defined once at module level for every user. Inside a run the
 * no-argument getters answer for the user whose request started it:
 *
 * - the runner's model provider is defined once too and asks for the user's
 *   own provider, `getUserLlmInstance()` (an `OpenAIProvider` the store builds
 *   per configuration with the user's key, see `openAIProviderSpec`), with the
 *   user's model. Not `setDefaultOpenAIClient()`: that is one client, one key,
 *   for the whole process;
 * - the tools call the user's own MCP server with `callUserMcpTool()` and read
 *   `getUserProvider()` / `getUserModel()`;
 * - run hooks (`runner.on(…)`) and tracing processors are registered once,
 *   outside any request; the SDK calls them inside the run, so they read the
 *   run's user (docs/agents-frameworks.md: what to do for exporters).
 *
 * The Responses API is the SDK's default; `useResponses: false` gives chat
 * completions (`OpenAIChatCompletionsModel`).
 *
 * `npx tsx examples/frameworks/openai-agents.ts` runs three users at once
 * against the wire server and the MCP project's server-everything over stdio.
 */
import { pathToFileURL } from 'node:url';
import { Agent, OpenAIProvider, Runner, setTraceProcessors, setTracingDisabled, tool, withTrace, type ModelProvider, type Span, type Trace, type TracingProcessor } from '@openai/agents';
import * as z from 'zod';
import { currentUserUuid, getUserLlmInstance, getUserModel, getUserProvider, type ResourceSpec } from '../../src/index.js';
import { callUserMcpTool } from '../../src/mcp.js';
import { runFrameworkDemo, toolText } from './demo.js';

/** The user's OpenAI provider, built by the store per configuration (key) and pointed at `baseURL`. */
export function openAIProviderSpec(baseURL: string, useResponses = true): ResourceSpec<OpenAIProvider> {
  return { create: (config) => new OpenAIProvider({ apiKey: config.llmCredentials?.apiKey ?? '', baseURL, useResponses }) };
}

/** Defined once: every run gets the current user's provider and model. */
export const userModels: ModelProvider = {
  getModel: () => (getUserLlmInstance() as OpenAIProvider).getModel(getUserModel() ?? undefined),
};

// Tools: defined once; each call reads the user it runs for.
export const echo = tool({
  name: 'echo',
  description: "Echoes a message through the user's MCP server.",
  parameters: z.object({ message: z.string() }),
  execute: async ({ message }) => toolText(await callUserMcpTool('echo', { message })),
});
export const whoami = tool({
  name: 'whoami',
  description: 'Names the user and their model.',
  parameters: z.object({}),
  execute: async () => `${currentUserUuid()} on ${getUserProvider()}/${getUserModel()}`,
});

export const agent = new Agent({ name: 'assistant', instructions: 'Use the tools you are asked to use.', tools: [echo, whoami] });
export const runner = new Runner({ modelProvider: userModels });

/** What a hook or a tracing processor saw: the user the getters answered for, and the run's own user. */
export interface HookRead {
  readonly event: string;
  /** `currentUserUuid()` inside the callback. */
  readonly user: string | undefined;
  /** `getUserModel()` inside the callback. */
  readonly model: string | null | undefined;
  /** The user of the run, from the run's context (hooks) or the tool output (tracing spans). */
  readonly runUser: string | undefined;
}

/** Per-user accounting, registered once (outside any request). */
export const hookReads: HookRead[] = [];
const read = (event: string, runUser: string | undefined): void => {
  hookReads.push({ event, user: currentUserUuid(), model: currentUserUuid() === undefined ? undefined : getUserModel(), runUser });
};
runner.on('agent_tool_end', (context) => read('agent_tool_end', (context.context as { user?: string } | undefined)?.user));
runner.on('agent_end', (context) => read('agent_end', (context.context as { user?: string } | undefined)?.user));

/** A tracing processor (for per-user usage, say), registered once in place of the default exporter. */
export const spanLedger: TracingProcessor = {
  async onTraceStart(_trace: Trace) {},
  async onTraceEnd(_trace: Trace) {},
  async onSpanStart(_span: Span<any>) {},
  async onSpanEnd(span: Span<any>) {
    const data = span.spanData as { type: string; output?: string };
    if (data.type === 'function') read('span_end:function', /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(data.output ?? '')?.[0]);
  },
  async shutdown() {},
  async forceFlush() {},
};
// Nothing leaves the process: the ledger replaces the default exporter; on even under NODE_ENV=test.
setTraceProcessors([spanLedger]);
setTracingDisabled(false);

/**
 * Runs the agent for the current user; the final output. The trace carries
 * the user's id in its metadata: exporters see batches of every user's spans,
 * so they must read the user from there, not from the getters.
 */
export async function ask(prompt: string): Promise<string> {
  const user = currentUserUuid() ?? '';
  return withTrace('assistant', async () => {
    const result = await runner.run(agent, prompt, { context: { user }, maxTurns: 6 });
    return String(result.finalOutput ?? '');
  }, { metadata: { user } });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const ok = await runFrameworkDemo('OpenAI Agents', (wire) => openAIProviderSpec(`${wire}/openai/v1`), ask);
  process.exitCode = ok ? 0 : 1;
}
