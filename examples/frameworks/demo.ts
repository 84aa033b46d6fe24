/**
 * What the framework examples share: a store whose users each have their own
 * key, model and MCP session (the MCP project's server-everything), users
 * that ask their agent to call two tools, and the check that every answer,
 * every tool result and every LLM call that reached the wire server belongs
 * to the user who asked.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ContextStore, configureUser, runAsUser, type ResourceSpec } from '../../src/index.js';
import { createMcpClientFactory, type McpServerDefinition } from '../../src/mcp.js';
import { referenceServerBin } from '../mcp-servers.js';
import { keyFingerprint, startWireServer, type WireCall } from '../providers/wire-server.js';

/** The text of an MCP tool result, as a framework tool returns it to the model. */
export function toolText(result: CallToolResult): string {
  return result.content.map((c) => (c.type === 'text' ? c.text : `[${c.type}]`)).join('\n');
}

export interface DemoUser {
  readonly uuid: string;
  readonly model: string;
  readonly apiKey: string;
}

/** `n` users, each with their own key and model. */
export function demoUsers(n: number): DemoUser[] {
  return Array.from({ length: n }, (_, i) => ({
    uuid: randomUUID(),
    model: `gpt-4o-mini-u${i}`,
    apiKey: `sk-demo-${randomBytes(12).toString('base64url')}`,
  }));
}

/** A store building each user's LLM client with `llm` and their MCP client for `everything` (default: server-everything over stdio). */
export function demoStore(llm: ResourceSpec, everything: McpServerDefinition = { command: process.execPath, args: [referenceServerBin('server-everything')] }): ContextStore {
  return new ContextStore({
    resources: { llmInstance: llm, mcpClient: createMcpClientFactory({ servers: { everything }, connectTimeout: 15_000 }) },
  });
}

/** The prompt of `user`: two tool calls by the wire server's `call <tool> <json>` convention. */
export function promptOf(user: DemoUser): string {
  return `call echo {"message":"${user.uuid}"} then call whoami`;
}

/** What the final answer must quote: the user's own echo and their own identity, from the tools. */
export function expectedQuotes(user: DemoUser): string[] {
  return [`Echo: ${user.uuid}`, `${user.uuid} on OpenAI/${user.model}`];
}

/** Runs `ask` as each user at once (after a random delay up to `jitterMs`); the answers in user order. */
export async function askAll(store: ContextStore, users: readonly DemoUser[], ask: (prompt: string) => Promise<string>, jitterMs = 20): Promise<string[]> {
  return Promise.all(users.map((user) => runAsUser(user.uuid, async () => {
    await configureUser({ provider: 'OpenAI', model: user.model, llmCredentials: { apiKey: user.apiKey }, mcpServerName: 'everything' });
    await new Promise((resolve) => setTimeout(resolve, Math.random() * jitterMs));
    return ask(promptOf(user));
  }, { store })));
}

/** The wire calls of each user (found by the user id in the prompt), and those with another user's key or model. */
export function wireByUser(calls: readonly WireCall[], users: readonly DemoUser[]) {
  const perUser = new Map<string, WireCall[]>(users.map((u) => [u.uuid, []]));
  const wrong: WireCall[] = [];
  const unattributed: WireCall[] = [];
  for (const call of calls) {
    const user = users.find((u) => call.prompt.includes(u.uuid));
    if (user === undefined) {
      unattributed.push(call);
      continue;
    }
    perUser.get(user.uuid)!.push(call);
    if (call.keyHash !== keyFingerprint(user.apiKey) || call.model !== user.model) wrong.push(call);
  }
  return { perUser, wrong, unattributed };
}

/** The demo of an example: three users at once; prints who got what; true when nothing crossed. */
export async function runFrameworkDemo(
  framework: string,
  llm: (wireUrl: string) => ResourceSpec,
  ask: (prompt: string) => Promise<string>,
): Promise<boolean> {
  const wire = await startWireServer();
  const store = demoStore(llm(wire.url));
  try {
    const users = demoUsers(3);
    const answers = await askAll(store, users, ask);
    const { perUser, wrong, unattributed } = wireByUser(wire.calls, users);
    let ok = wrong.length === 0 && unattributed.length === 0;
    users.forEach((user, i) => {
      const own = expectedQuotes(user).every((q) => answers[i]!.includes(q));
      ok &&= own;
      const calls = perUser.get(user.uuid)!;
      console.log(`${framework} ${user.uuid.slice(0, 8)} ${user.model}: ${calls.length} LLM calls, tools called ${calls.flatMap((c) => (c.toolCall ? [c.toolCall.name] : [])).join(', ')}; answer ${own ? 'is its own' : 'WRONG'}: ${answers[i]}`);
    });
    console.log(`${framework}: ${wrong.length} LLM calls with another user's key or model, ${unattributed.length} unattributed`);
    return ok;
  } finally {
    await store.close();
    await wire.close();
  }
}
