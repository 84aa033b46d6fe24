/**
 * The agent loop: each user's LLM (the real AI SDK providers against the
 * wire server) calls that user's MCP tools (real MCP SDK servers over
 * Streamable HTTP, the reference server-memory over stdio) through
 * `getUserTools()`, step after step. 50 users interleave; a disconnect
 * cancels the tool call (the server sees the cancellation) and the LLM
 * stream; a killed server ends as a tool error or a recovered connection; the
 * set follows tool-list changes; names stay apart across servers; the
 * operator's policy hides tools; results are bounded.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stepCountIs } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { EXAMPLE_SERVERS, memoryServer, startMcpServer, type RunningMcpServer } from '../examples/mcp-servers.js';
import { boundResult, getUserLlm, getUserTools, userToolOrigin } from '../src/ai.js';
import { ContextStore, configureUser, runAsUser, setUserMcpServerNames } from '../src/index.js';
import { createMcpClientFactory, getUserMcpConnections, McpToolNotAllowedError, type McpClientFactory } from '../src/mcp.js';
import { freePort } from './helpers/redis.js';
import { processAlive, startEverythingHttp, until, type EverythingHttp } from './support/mcp-reference.js';

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

const PROVIDERS = [
  { provider: 'OpenAI', model: 'gpt-4o-mini', label: 'openai' },
  { provider: 'Anthropic', model: 'claude-3-5-haiku', label: 'anthropic' },
  { provider: 'Google', model: 'gemini-2.5-flash', label: 'google' },
] as const;

let wire: WireServer;
let slowWire: WireServer;
let warehouse: RunningMcpServer;
let crm: RunningMcpServer;
let alpha: RunningMcpServer;
let beta: RunningMcpServer;
let fragile: RunningMcpServer;
let dataDir: string;
let everything: EverythingHttp;
let mcp: McpClientFactory;
let store: ContextStore;
let slowStore: ContextStore;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** The operator sends each user's id in a header, so the servers can tell whose connection a call came on. */
const perUser = (server: () => RunningMcpServer, extra: object = {}) => (_config: unknown, userUuid: string) => ({ url: server().url, headers: { 'x-user': userUuid }, ...extra });

beforeAll(async () => {
  [wire, slowWire, warehouse, crm, alpha, beta, fragile] = await Promise.all([
    startWireServer({ tokenDelayMs: 1 }),
    startWireServer({ tokenDelayMs: 40 }),
    startMcpServer('warehouse', [...EXAMPLE_SERVERS.warehouse, { name: 'slow_query', description: 'A query that takes 3 s.', delayMs: 3_000 }]),
    startMcpServer('crm', EXAMPLE_SERVERS.crm),
    startMcpServer('alpha', [{ name: 'lookup', description: 'Looks up on alpha.' }]),
    startMcpServer('beta', [{ name: 'lookup', description: 'Looks up on beta.' }]),
    startMcpServer('fragile', [{ name: 'ping', description: 'Pings.' }]),
  ]);
  dataDir = mkdtempSync(join(tmpdir(), 'kuc-loop-memory-'));
  everything = await startEverythingHttp(await freePort());
  const servers = {
    warehouse: perUser(() => warehouse),
    crm: perUser(() => crm, { tools: { hide: ['open_ticket'] } }),
    alpha: perUser(() => alpha),
    beta: perUser(() => beta),
    fragile: perUser(() => fragile),
    memory: memoryServer(dataDir),
    everything: { url: everything.url, tools: { allow: ['echo', 'get-sum'] } },
  };
  mcp = createMcpClientFactory({ servers, backoff: { initialDelay: 50, maxDelay: 200 } });
  store = new ContextStore({ resources: { mcpClient: mcp, llmInstance: exampleLlmRegistry(wire.url).resource() } });
  slowStore = new ContextStore({
    resources: { mcpClient: createMcpClientFactory({ servers }), llmInstance: exampleLlmRegistry(slowWire.url).resource() },
  });
}, 30_000);

afterAll(async () => {
  await Promise.all([store?.close(), slowStore?.close()]);
  await mcp?.settle();
  await Promise.all([wire, slowWire, warehouse, crm, alpha, beta, fragile].map((s) => s?.close()));
  await everything?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function newUser(i: number, mcpServerNames: string[], on = store): Promise<{ uuid: string; key: string; provider: string; model: string; label: string }> {
  const uuid = randomUUID();
  const p = PROVIDERS[i % PROVIDERS.length]!;
  const key = `sk-${p.label}-${randomUUID()}`;
  await runAsUser(uuid, () => configureUser({ provider: p.provider, model: p.model, llmCredentials: { apiKey: key }, mcpServerNames }), { store: on });
  return { uuid, key, ...p };
}

/** One loop of the current user: generateText or streamText with their tools and a step limit. */
async function loop(prompt: string, streamed: boolean, steps = 4, options: Parameters<typeof getUserTools>[0] = {}) {
  const llm = (await getUserLlm())!;
  const tools = await getUserTools(options);
  if (!streamed) {
    const r = await llm.generateText({ tools, prompt, stopWhen: stepCountIs(steps) });
    return { text: r.text, calls: r.steps.flatMap((s) => s.toolCalls.map((c) => c.toolName)), tools };
  }
  const r = llm.streamText({ tools, prompt, stopWhen: stepCountIs(steps) });
  return { text: await r.text, calls: (await r.steps).flatMap((s) => s.toolCalls.map((c) => c.toolName)), tools };
}

describe('the agent loop on the user\'s own LLM and MCP servers', { timeout: 60_000 }, () => {
  it('50 users × 2 three-step loops with random delays: 0 tool calls on another user\'s connection, 0 LLM calls with another user\'s key or model', async () => {
    wire.reset();
    const servedBefore = { warehouse: warehouse.toolCalls.length, crm: crm.toolCalls.length };
    const users = await Promise.all(Array.from({ length: 50 }, (_, i) => newUser(i, ['warehouse', 'crm'])));
    // allSettled: a failed loop is reported with its reason, and no loop outlives the test.
    const settled = await Promise.allSettled(users.flatMap((u) => [0, 1].map((q) =>
      runAsUser(u.uuid, async () => {
        await delay(Math.random() * 30);
        const prompt = `for ${u.uuid}: call warehouse__run_sql {"input":"${u.uuid}-sql-${q}"} then call crm__find_customer {"input":"${u.uuid}-cust-${q}"}`;
        return { u, q, ...(await loop(prompt, q === 1)) };
      }, { store }))));
    expect(settled.flatMap((s) => (s.status === 'rejected' ? [String(s.reason)] : []))).toEqual([]);
    const answers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    // What each user's loop answered: their own two results, from their own tools.
    const wrongAnswers = answers.filter((a) =>
      !a.text.includes(`warehouse.run_sql(${a.u.uuid}-sql-${a.q})`) || !a.text.includes(`crm.find_customer(${a.u.uuid}-cust-${a.q})`)
      || a.calls.join() !== 'warehouse__run_sql,crm__find_customer' || !a.text.includes(`key:${keyFingerprint(a.u.key)}`));
    expect(wrongAnswers.map((a) => a.text)).toEqual([]);
    // The servers' ledger: every call came on the connection of the user it was for.
    const served = [...warehouse.toolCalls.slice(servedBefore.warehouse), ...crm.toolCalls.slice(servedBefore.crm)];
    expect(served).toHaveLength(200);
    expect(served.filter((c) => c.user === undefined || !c.input?.startsWith(c.user))).toEqual([]);
    // No MCP session carried two users' calls.
    const usersOf = new Map<string | undefined, Set<string>>();
    for (const c of served) usersOf.set(c.sessionId, (usersOf.get(c.sessionId) ?? new Set()).add(c.user!));
    expect([...usersOf.entries()].filter(([id, who]) => id === undefined || who.size !== 1)).toEqual([]);
    expect(usersOf.size).toBeGreaterThanOrEqual(100); // at least one session per user and server
    // The wire's ledger: every LLM call carried its user's key and model, offered that user's tools.
    const byUser = new Map(users.map((u) => [u.uuid, u]));
    expect(wire.calls).toHaveLength(300);
    const wrongCalls = wire.calls.filter((c) => {
      const u = byUser.get(/for ([0-9a-f-]{36}):/.exec(c.prompt)?.[1] ?? '');
      return u === undefined || c.keyHash !== keyFingerprint(u.key) || c.model !== u.model || c.label !== u.label
        || c.toolsOffered.join() !== 'warehouse__list_tables,warehouse__run_sql,warehouse__slow_query,crm__find_customer'
        || c.toolResults.some((r) => !r.text.includes(u.uuid));
    });
    expect(wrongCalls).toEqual([]);
  });

  it('the reference servers: 12 users loop on server-everything (Streamable HTTP) and a server-memory child each (stdio): each reads back only their own graph', async () => {
    const users = await Promise.all(Array.from({ length: 12 }, (_, i) => newUser(i, ['everything', 'memory'])));
    const answers = await Promise.all(users.map((u, i) => runAsUser(u.uuid, async () => {
      await delay(Math.random() * 30);
      const entity = `{"entities":[{"name":"e-${u.uuid}","entityType":"user","observations":["own"]}]}`;
      return loop(`call everything__echo {"message":"${u.uuid}"} then call memory__create_entities ${entity} then call memory__read_graph`, i % 2 === 0, 5);
    }, { store })));
    answers.forEach((a, i) => {
      const u = users[i]!;
      expect(a.calls).toEqual(['everything__echo', 'memory__create_entities', 'memory__read_graph']);
      expect(a.text).toContain(`everything__echo → Echo: ${u.uuid}`);
      expect(a.text).toMatch(new RegExp(`memory__read_graph → .*e-${u.uuid}`));
      // The policy lets two of server-everything's tools through; each user's graph holds their entity only.
      expect(Object.keys(a.tools).filter((n) => n.startsWith('everything__')).sort()).toEqual(['everything__echo', 'everything__get-sum']);
      expect(users.filter((o) => o !== u && a.text.includes(o.uuid))).toEqual([]);
    });
  });

  it('a client disconnect mid tool call cancels the call (the MCP server is told) and the loop; the connection serves the next request', async () => {
    const u = await newUser(0, ['warehouse']);
    const controller = new AbortController();
    const before = wire.calls.length;
    const served = warehouse.toolCalls.length;
    const running = runAsUser(u.uuid, () => loop(`call warehouse__slow_query {"input":"${u.uuid}"}`, true), { store, signal: controller.signal });
    await until(() => warehouse.toolCalls.length > served, 5_000, 'the slow tool call to reach the server');
    controller.abort();
    await expect(running).rejects.toThrow();
    const call = warehouse.toolCalls[served]!;
    expect(call.user).toBe(u.uuid);
    await until(() => call.cancelled, 2_000, 'the server to see notifications/cancelled');
    await delay(50);
    expect(wire.calls.length - before).toBe(1); // no LLM step after the disconnect
    const [connection] = await runAsUser(u.uuid, () => getUserMcpConnections(), { store });
    const session = connection!.sessionId;
    const next = await runAsUser(u.uuid, () => loop(`call warehouse__list_tables {"input":"${u.uuid}-after"}`, false), { store });
    expect(next.text).toContain(`warehouse.list_tables(${u.uuid}-after)`);
    expect(connection!.sessionId).toBe(session);
  });

  it('a client disconnect while the LLM streams its final answer aborts that stream on the wire', async () => {
    const u = await newUser(1, ['crm'], slowStore);
    const controller = new AbortController();
    slowWire.reset();
    const running = runAsUser(u.uuid, () => loop(`call crm__find_customer {"input":"x"} ${'and more words '.repeat(30)}`, true), { store: slowStore, signal: controller.signal });
    await until(() => slowWire.calls.length === 2, 10_000, 'the final step to start');
    controller.abort();
    await expect(running).rejects.toThrow();
    const final = await slowWire.settled(slowWire.calls[1]!.id);
    expect(final.aborted).toBe(true);
    expect(final.toolResults[0]!.text).toContain('crm.find_customer(x)');
  });

  it('an MCP server killed mid loop (stdio child, HTTP server) ends as a recovered connection or a tool error: no throw, no other user\'s data', async () => {
    const [u, other] = await Promise.all([newUser(0, ['memory', 'fragile']), newUser(1, ['memory'])]);
    const entity = (who: string) => `{"entities":[{"name":"n-${who}","entityType":"t","observations":["o-${who}"]}]}`;
    let killed: number | undefined;
    const mine = runAsUser(u.uuid, async () => {
      const llm = (await getUserLlm())!;
      const tools = await getUserTools();
      const [memory] = await getUserMcpConnections();
      const r = await llm.generateText({
        tools, stopWhen: stepCountIs(5),
        prompt: `call memory__create_entities ${entity(u.uuid)} then call memory__read_graph then call fragile__ping`,
        onStepFinish: async (step) => {
          if (step.toolCalls[0]?.toolName === 'memory__create_entities') {
            killed = memory!.pid;
            process.kill(killed!, 'SIGKILL');
            await fragile.close();
          }
        },
      });
      return r;
    }, { store });
    const theirs = runAsUser(other.uuid, () => loop(`call memory__create_entities ${entity(other.uuid)} then call memory__read_graph`, false, 4), { store });
    const [r, t] = await Promise.all([mine, theirs]);
    expect(killed).toBeDefined();
    await until(() => !processAlive(killed!), 3_000, 'the killed child to be gone');
    // read_graph ran on a rebuilt child (recovered: the graph file holds what was written) or came back as a tool error.
    expect(r.text).toMatch(/memory__read_graph (→ .*n-|\(error\)|→ .*Tool \\?"read_graph\\?" of MCP server \\?"memory\\?" failed)/);
    // The closed HTTP server: a tool error naming the failure's code, never its URL.
    expect(r.text).toMatch(/fragile__ping → .*Tool \\?"ping\\?" of MCP server \\?"fragile\\?" failed: the server could not be reached \(ERR_MCP_[A-Z_]+\)/);
    expect(r.text).not.toContain('127.0.0.1');
    expect(r.text).not.toContain(other.uuid);
    expect(t.text).toContain(`n-${other.uuid}`);
    expect(t.text).not.toContain(u.uuid);
  });
});

describe('the tool set', { timeout: 30_000 }, () => {
  it('is cached per configuration, follows a tools/list_changed from the server, and is rebuilt when the configuration changes', async () => {
    const u = await newUser(0, ['alpha']);
    await runAsUser(u.uuid, async () => {
      const first = await getUserTools();
      expect(Object.keys(first)).toEqual(['alpha__lookup']);
      expect(await getUserTools()).toBe(first);
      alpha.addTool({ name: `added_${u.uuid.slice(0, 8)}`, description: 'Added at run time.' });
      let next = first;
      await until(() => void getUserTools().then((t) => (next = t)) === undefined && next !== first, 3_000, 'the new tool list');
      expect(Object.keys(next)).toContain(`alpha__added_${u.uuid.slice(0, 8)}`);
      const r = await loop(`call alpha__added_${u.uuid.slice(0, 8)} {"input":"new"}`, false);
      expect(r.text).toContain(`alpha.added_${u.uuid.slice(0, 8)}(new)`);
      await setUserMcpServerNames(['alpha', 'crm']);
      const third = await getUserTools();
      expect(Object.keys(third)).toEqual(expect.arrayContaining(['alpha__lookup', 'crm__find_customer']));
    }, { store });
  });

  it('keeps same-named tools of two servers apart by prefix, each running on its own server', async () => {
    const u = await newUser(2, ['alpha', 'beta']);
    const r = await runAsUser(u.uuid, () => loop(`call alpha__lookup {"input":"${u.uuid}-a"} then call beta__lookup {"input":"${u.uuid}-b"}`, true), { store });
    expect(r.calls).toEqual(['alpha__lookup', 'beta__lookup']);
    expect(r.text).toContain(`alpha.lookup(${u.uuid}-a)`);
    expect(r.text).toContain(`beta.lookup(${u.uuid}-b)`);
    expect(alpha.toolCalls.filter((c) => c.user === u.uuid).map((c) => c.input)).toEqual([`${u.uuid}-a`]);
    expect(beta.toolCalls.filter((c) => c.user === u.uuid).map((c) => c.input)).toEqual([`${u.uuid}-b`]);
    expect(userToolOrigin(r.tools, 'beta__lookup')).toEqual({ server: 'beta', tool: 'lookup' });
  });

  it('keeps names within what providers accept: prefixes that coincide get a stable hash, long names are cut with one', async () => {
    const long = 'p'.repeat(70);
    const own = new ContextStore({
      resources: {
        mcpClient: createMcpClientFactory({
          servers: { 'a.b': { url: alpha.url, toolPrefix: 'same' }, 'a-b': { url: beta.url, toolPrefix: 'same' }, long: { url: crm.url, toolPrefix: long } },
        }),
      },
    });
    try {
      const names = await runAsUser(randomUUID(), async () => {
        await configureUser({ mcpServerNames: ['a.b', 'a-b', 'long'] });
        return Object.keys(await getUserTools());
      }, { store: own });
      const again = await runAsUser(randomUUID(), async () => {
        await configureUser({ mcpServerNames: ['a.b', 'a-b', 'long'] });
        return Object.keys(await getUserTools());
      }, { store: own });
      expect(names).toEqual(again); // stable across users
      // (alpha may carry tools added by the list-change test: look at the lookups and the long ones.)
      const lookups = names.filter((n) => n.endsWith('__lookup'));
      expect(lookups[0]).toBe('same__lookup');
      expect(lookups[1]).toMatch(/^same_[0-9a-f]{8}__lookup$/);
      const longOnes = names.filter((n) => n.startsWith('ppp'));
      expect(longOnes).toHaveLength(EXAMPLE_SERVERS.crm.length);
      expect(longOnes.every((n) => n.length === 64 && /^p+_[0-9a-f]{8}$/.test(n))).toBe(true);
      expect(new Set(names).size).toBe(names.length);
      expect(names.every((n) => /^[A-Za-z0-9_-]{1,64}$/.test(n))).toBe(true);
    } finally {
      await own.close();
    }
  });

  it('reads a result\'s text parts, resources, images and structured content, bounded with a marker', () => {
    expect(boundResult({ content: [{ type: 'text', text: 'a' }, { type: 'image', data: 'xx', mimeType: 'image/png' }, { type: 'resource', resource: { uri: 'u:1', text: 'r' } }, { type: 'resource_link', uri: 'u:2' }] }, 100))
      .toEqual({ text: 'a\n[image image/png]\nr\n[resource u:2]', isError: false, truncated: 0 });
    expect(boundResult({ content: [], structuredContent: { n: 1 }, isError: true }, 100)).toEqual({ text: '{"n":1}', isError: true, truncated: 0 });
    const cut = boundResult({ content: [{ type: 'text', text: 'z'.repeat(250) }] }, 100);
    expect(cut).toEqual({ text: `${'z'.repeat(100)}\n[truncated: the tool returned 250 characters; the last 150 were left out]`, isError: false, truncated: 150 });
  });

  it('hides what the operator\'s policy hides: not offered to the LLM, refused when called directly, never sent to the server', async () => {
    const u = await newUser(1, ['crm']);
    const served = crm.toolCalls.length;
    await runAsUser(u.uuid, async () => {
      const r = await loop('call crm__open_ticket {"input":"x"}', false);
      expect(Object.keys(r.tools)).toEqual(['crm__find_customer']);
      expect(r.text).toContain('no tool named crm__open_ticket was offered');
      const [connection] = await getUserMcpConnections();
      await expect(connection!.callTool('open_ticket', {})).rejects.toBeInstanceOf(McpToolNotAllowedError);
    }, { store });
    expect(crm.toolCalls.length).toBe(served);
  });

  it('bounds a result with a truncation marker, and turns a time-out into a tool error the loop goes on with', async () => {
    const u = await newUser(0, ['warehouse']);
    await runAsUser(u.uuid, async () => {
      const big = 'x'.repeat(5_000);
      const r = await loop(`call warehouse__run_sql {"input":"${big}"} then call warehouse__slow_query`, false, 4, { maxResultChars: 300, timeout: 200 });
      const last = wire.calls.at(-1)!;
      expect(last.toolResults[0]!.text).toMatch(/^warehouse\.run_sql\(x+\n\[truncated: the tool returned 5019 characters; the last 4719 were left out\]$/);
      expect(last.toolResults[0]!.text.length).toBeLessThan(400);
      // The AI SDK sends a thrown tool to OpenAI as {"error": "…"}: unescape before reading.
      expect(last.toolResults[1]!.text.replace(/\\"/g, '"')).toMatch(/Tool "slow_query" of MCP server "warehouse" failed: .*timed out/i);
      expect(r.text).toContain('2 tool results');
    }, { store });
    const slow = warehouse.toolCalls.filter((c) => c.user === u.uuid && c.tool === 'slow_query');
    await until(() => slow[0]?.cancelled === true, 2_000, 'the timed-out call to be cancelled on the server');
  });

  it('refuses to run a tool inside another user\'s scope', async () => {
    const [a, b] = await Promise.all([newUser(0, ['alpha']), newUser(1, ['alpha'])]);
    const tools = await runAsUser(a.uuid, () => getUserTools(), { store });
    const run = runAsUser(b.uuid, () => tools['alpha__lookup']!.execute!({ input: 'x' }, { toolCallId: 't', messages: [], context: {} } as never), { store });
    await expect(run).rejects.toThrow(/belongs to another user/);
    expect(alpha.toolCalls.filter((c) => c.user === a.uuid)).toEqual([]);
  });
});
