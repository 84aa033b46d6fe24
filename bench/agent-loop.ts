/**
 * The agent loop's tool bridge: `getUserTools()` against the hand-written
 * 15-line bridge a user would write without it (each MCP tool → `tool({
 * inputSchema: jsonSchema(t.inputSchema), execute: callUserMcpTool })`), in
 * the same run, in alternating paired rounds:
 *
 * - per loop step: a real 2-step `generateText` loop (the AI SDK's OpenAI
 *   chat provider against the local wire server, one tool call on an MCP
 *   server over Streamable HTTP) per user request, the tool set fetched per
 *   request as an app does; time per step;
 * - per tool call: `execute()` of one tool alone (the bridge's own work:
 *   scope check, signal join, error mapping, bound), time per call;
 * - memory per cached tool set: heap after building the sets of N users
 *   (connections and catalogs already cached), per user.
 *
 *   node --expose-gc --import tsx bench/agent-loop.ts [--rounds 8] [--loops 40] [--users 200]
 *
 * Prints a table and one JSON line. Numbers go into docs/agents-loop.md.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, tool, type ToolSet } from 'ai';
import { EXAMPLE_SERVERS, startMcpServer } from '../examples/mcp-servers.js';
import { startWireServer } from '../examples/providers/wire-server.js';
import { getUserTools } from '../src/ai.js';
import { ContextStore, configureUser, runAsUser } from '../src/index.js';
import { callUserMcpTool, createMcpClientFactory, getUserMcpTools } from '../src/mcp.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '8' },
    loops: { type: 'string', default: '40' },
    users: { type: 'string', default: '200' },
  },
});
const ROUNDS = Number(values.rounds);
const LOOPS = Number(values.loops);
const USERS = Number(values.users);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

/** The hand-written bridge (what the issue measured a new user writing). */
async function handWrittenTools(): Promise<ToolSet> {
  const tools: ToolSet = {};
  for (const t of await getUserMcpTools()) {
    tools[t.name] = tool({
      description: t.description ?? t.name,
      inputSchema: jsonSchema<Record<string, unknown>>(t.inputSchema as Parameters<typeof jsonSchema>[0]),
      execute: async (args) => callUserMcpTool(t.name, args),
    });
  }
  return tools;
}

const BRIDGES = {
  'getUserTools()': { tools: () => getUserTools(), name: 'warehouse__run_sql' },
  'hand-written': { tools: handWrittenTools, name: 'run_sql' },
} as const;
type BridgeId = keyof typeof BRIDGES;

const wire = await startWireServer({ tokenDelayMs: 0 });
const warehouse = await startMcpServer('warehouse', EXAMPLE_SERVERS.warehouse);
const mcp = createMcpClientFactory({ servers: { warehouse: { url: warehouse.url } } });
const store = new ContextStore({ resources: { mcpClient: mcp } });
const model = createOpenAI({ apiKey: 'sk-bench-key', baseURL: `${wire.url}/openai/v1` }).chat('gpt-4o-mini');
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

const user = randomUUID();
await runAsUser(user, () => configureUser({ mcpServerName: 'warehouse' }), { store });

/** ms per loop step of `loops` 2-step loops, each fetching its tool set as a request would. */
async function stepTime(id: BridgeId): Promise<number> {
  const bridge = BRIDGES[id];
  const start = performance.now();
  let steps = 0;
  for (let i = 0; i < LOOPS; i++) {
    steps += await runAsUser(user, async () => {
      const tools = await bridge.tools();
      const r = await generateText({ model, tools, stopWhen: stepCountIs(3), prompt: `call ${bridge.name} {"input":"q${i}"}` });
      if (!r.text.includes(`warehouse.run_sql(q${i})`)) throw new Error(`${id}: wrong answer ${r.text}`);
      return r.steps.length;
    }, { store });
  }
  return (performance.now() - start) / steps;
}

/** µs per `execute()` of one tool, the bridge's own path (plus the MCP round trip). */
async function callTime(id: BridgeId): Promise<number> {
  const bridge = BRIDGES[id];
  return runAsUser(user, async () => {
    const tools = await bridge.tools();
    const execute = tools[bridge.name]!.execute!;
    const options = { toolCallId: 'b', messages: [], context: {} } as never;
    const start = performance.now();
    for (let i = 0; i < LOOPS * 2; i++) await execute({ input: `c${i}` }, options);
    return ((performance.now() - start) * 1000) / (LOOPS * 2);
  }, { store });
}

// Warm up both paths (JIT, connection, catalog).
for (const id of Object.keys(BRIDGES) as BridgeId[]) {
  await stepTime(id);
  await callTime(id);
}
const steps: Record<BridgeId, number[]> = { 'getUserTools()': [], 'hand-written': [] };
const calls: Record<BridgeId, number[]> = { 'getUserTools()': [], 'hand-written': [] };
for (let round = 0; round < ROUNDS; round++) {
  // Paired rounds, the order alternating, so drift on a shared machine hits both alike.
  const order = (round % 2 === 0 ? ['getUserTools()', 'hand-written'] : ['hand-written', 'getUserTools()']) as BridgeId[];
  for (const id of order) steps[id].push(await stepTime(id));
  for (const id of order) calls[id].push(await callTime(id));
}

// Memory per cached tool set: N users with live connections and catalogs; then each one's set, kept.
const users = Array.from({ length: USERS }, () => randomUUID());
await Promise.all(users.map((u) => runAsUser(u, async () => {
  await configureUser({ mcpServerName: 'warehouse' });
  await getUserMcpTools();
}, { store })));
const heap = (): number => {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed;
};
const before = heap();
const kept = await Promise.all(users.map((u) => runAsUser(u, () => getUserTools(), { store })));
const perSet = (heap() - before) / USERS;
if (kept.some((set) => Object.keys(set).length !== EXAMPLE_SERVERS.warehouse.length)) throw new Error('a tool set is incomplete');

await store.close();
await mcp.settle();
await Promise.all([wire.close(), warehouse.close()]);

const m = (xs: number[]) => median(xs);
const result = {
  node: process.version,
  rounds: ROUNDS,
  loopsPerRound: LOOPS,
  msPerStep: { bridge: m(steps['getUserTools()']), handWritten: m(steps['hand-written']) },
  stepRatio: m(steps['getUserTools()'].map((v, i) => v / steps['hand-written'][i]!)),
  usPerToolCall: { bridge: m(calls['getUserTools()']), handWritten: m(calls['hand-written']) },
  callRatio: m(calls['getUserTools()'].map((v, i) => v / calls['hand-written'][i]!)),
  bytesPerCachedToolSet: Math.round(perSet),
  toolsPerSet: EXAMPLE_SERVERS.warehouse.length,
  users: USERS,
};
console.log(`per loop step:   bridge ${result.msPerStep.bridge.toFixed(3)} ms, hand-written ${result.msPerStep.handWritten.toFixed(3)} ms, ratio ${result.stepRatio.toFixed(3)} (median of ${ROUNDS} paired rounds)`);
console.log(`per tool call:   bridge ${result.usPerToolCall.bridge.toFixed(1)} µs, hand-written ${result.usPerToolCall.handWritten.toFixed(1)} µs, ratio ${result.callRatio.toFixed(3)}`);
console.log(`memory per cached tool set (${result.toolsPerSet} tools): ${result.bytesPerCachedToolSet} bytes (${USERS} users)`);
console.log(JSON.stringify(result));
