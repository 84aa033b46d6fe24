/**
 * The multi-user demo, on real SDK clients: user A configures
 * Google/gemini-2.5-flash with their own API key and two MCP servers,
 * `warehouse` (Streamable HTTP) and `memory` (the MCP project's reference
 * server-memory over stdio, a child process of A's own), user B
 * Anthropic/claude-3-5-haiku with theirs and `crm` (Streamable HTTP), and
 * user C OpenAI/gpt-4o-mini with theirs and a `memory` child of their own —
 * all at the same time. They fire interleaved agent queries (POST /agent):
 * each user's LLM, built with the AI SDK and answered by the local wire
 * server (examples/providers/wire-server.ts, which records the key, model,
 * tools offered and tool results of every call), calls that user's MCP tools
 * step after step. Then A rotates their key and everyone queries again.
 *
 * Prints, per query, the (masked) key and model that reached the wire, the
 * tools offered and called, and the server that ran each call; exits 1 on any
 * tool call that reached another user's server (the HTTP servers record the
 * user each call came for), any LLM call with another user's key or model or
 * tools, A's old key after the rotation was acknowledged, or a leftover
 * stdio process.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stdioCounters, type McpServerDefinition } from '../src/mcp.js';
import { createApp } from './app.js';
import { EXAMPLE_SERVERS, MEMORY_TOOLS, memoryServer, startExampleServers } from './mcp-servers.js';
import { exampleLlmRegistry } from './providers/registry.js';
import { keyFingerprint, maskKey, startWireServer, type WireCall } from './providers/wire-server.js';
import { generateSecret, mintToken } from './tokens.js';
import { collectUsage, limitOneUser, printUsage, usageOk } from './usage.js';
import { createUsageMeter } from '../src/usage.js';

export interface DemoRow {
  user: string;
  /** 1 before A's key rotation, 2 after. */
  phase: 1 | 2;
  query: number;
  expected: string;
  ran: string;
  /** The user's current key, masked. */
  key: string;
  /** Key (masked) and model of the call as the wire server recorded it. */
  keyOnWire: string;
  modelOnWire: string;
  ok: boolean;
  /** MCP servers the user configured, the tools their LLM was offered, and each tool call with the server that ran it. */
  mcpServers: readonly string[];
  toolsOffered: string[];
  toolCalls: Array<{ tool: string; server: string; ok: boolean }>;
}

type ServerName = 'warehouse' | 'crm' | 'memory';

const USERS = [
  { name: 'A', provider: 'Google', model: 'gemini-2.5-flash', wire: 'google', mcpServerNames: ['warehouse', 'memory'] },
  { name: 'B', provider: 'Anthropic', model: 'claude-3-5-haiku', wire: 'anthropic', mcpServerNames: ['crm'] },
  { name: 'C', provider: 'OpenAI', model: 'gpt-4o-mini', wire: 'openai', mcpServerNames: ['memory'] },
] as const satisfies ReadonlyArray<{ mcpServerNames: readonly ServerName[] } & Record<string, unknown>>;

const TOOLS_OF: Record<ServerName, readonly string[]> = {
  warehouse: EXAMPLE_SERVERS.warehouse.map((t) => t.name),
  crm: EXAMPLE_SERVERS.crm.map((t) => t.name),
  memory: MEMORY_TOOLS,
};

/** The agent query of user `who` number `i`: two tool calls on their own servers, then the answer. */
function promptOf(who: 'A' | 'B' | 'C', i: number): { prompt: string; calls: string[] } {
  const tag = `${who}-q${i}`;
  const entity = `{"entities":[{"name":"${tag}","entityType":"query","observations":["asked by ${who}"]}]}`;
  const calls = {
    A: [`warehouse__run_sql {"input":"${tag}"}`, `memory__create_entities ${entity}`],
    B: [`crm__find_customer {"input":"${tag}"}`, `crm__open_ticket {"input":"${tag}"}`],
    C: [`memory__create_entities ${entity}`, `memory__search_nodes {"query":"${tag}"}`],
  }[who];
  return { prompt: `query ${i} from user ${who}: call ${calls.join(' then call ')}`, calls: calls.map((c) => c.split(' ')[0]!) };
}

/** stdio children of the last run: started and ended. */
export const demoProcesses = { started: 0, ended: 0 };

const newKey = (prefix: string): string => `${prefix}-${randomBytes(18).toString('base64url')}`;

export async function runDemo(queriesPerUser = 8): Promise<DemoRow[]> {
  const secret = generateSecret();
  const [mcp, wire] = await Promise.all([startExampleServers(), startWireServer()]);
  const dataDir = mkdtempSync(join(tmpdir(), 'kuc-demo-memory-'));
  const started = stdioCounters.started;
  const ended = stdioCounters.exited;
  const usage = createUsageMeter();
  const { app, store } = createApp({
    secret,
    llms: exampleLlmRegistry(wire.url, { usage }),
    admin: { usage },
    // The HTTP servers get the user's id in a header (the operator's choice), so they can tell whose call they ran.
    mcpServers: new Map<string, McpServerDefinition>([
      ['warehouse', (_config: unknown, userUuid: string) => ({ url: mcp.warehouse.url, headers: { 'x-user': userUuid } })],
      ['crm', (_config: unknown, userUuid: string) => ({ url: mcp.crm.url, headers: { 'x-user': userUuid } })],
      ['memory', memoryServer(dataDir)],
    ]),
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const users = USERS.map((u) => ({ ...u, uuid: randomUUID(), token: '', key: newKey({ A: 'AIza', B: 'sk-ant', C: 'sk-proj' }[u.name]) }));
  for (const u of users) u.token = mintToken(secret, u.uuid);

  const call = async (token: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(base + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) throw new Error(`${path} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  const runPhase = async (phase: 1 | 2): Promise<DemoRow[]> => {
    const jobs = users.flatMap((u) => Array.from({ length: queriesPerUser / 2 }, (_, i) => ({ u, i: i + (phase - 1) * (queriesPerUser / 2) })));
    jobs.sort(() => Math.random() - 0.5);
    return Promise.all(
      jobs.map(async ({ u, i }) => {
        const key = u.key;
        const { prompt, calls: wanted } = promptOf(u.name, i);
        const res = await call(u.token, '/agent', { prompt });
        const ran = `${String(res['provider'])}/${String(res['model'])}`;
        const expected = `${u.provider}/${u.model}`;
        const toolCalls = res['toolCalls'] as DemoRow['toolCalls'];
        const toolsOffered = res['toolsOffered'] as string[];
        const ownTools = u.mcpServerNames.flatMap((s) => TOOLS_OF[s].map((t) => `${s}__${t}`));
        // The wire server's own record of this query's LLM calls (one per step): key, model and tools as they reached it.
        const onWire: WireCall[] = wire.calls.filter((c) => c.prompt.startsWith(`query ${i} from user ${u.name}:`));
        const wireOk = onWire.length === wanted.length + 1 && onWire.every((c) => c.label === u.wire && c.model === u.model
          && c.keyHash === keyFingerprint(key) && sameList([...c.toolsOffered].sort(), ownTools.toSorted()));
        // The HTTP servers' own record: every call for this query came on this user's connection.
        const served = [...mcp.warehouse.toolCalls, ...mcp.crm.toolCalls].filter((c) => c.input === `${u.name}-q${i}`);
        const servedOk = served.every((c) => c.user === u.uuid);
        const callsOk = sameList(toolCalls.map((c) => c.tool), wanted) && toolCalls.every((c) => c.ok && (u.mcpServerNames as readonly string[]).includes(c.server));
        const answer = String(res['answer']);
        const answerOk = answer.includes(`${u.name}-q${i}`) && users.every((o) => o === u || !answer.includes(`${o.name}-q`));
        return {
          user: u.name,
          phase,
          query: i,
          expected,
          ran,
          key: maskKey(key),
          keyOnWire: onWire[0]?.keyMasked ?? '(no call)',
          modelOnWire: onWire[0] === undefined ? '(no call)' : `${onWire[0].label}/${onWire[0].model}`,
          ok: ran === expected && wireOk && servedOk && callsOk && answerOk && res['user'] === u.uuid && !JSON.stringify(res).includes(key),
          mcpServers: u.mcpServerNames,
          toolsOffered,
          toolCalls,
        };
      }),
    );
  };

  try {
    // The users configure at the same moment, each with their own key.
    await Promise.all(users.map((u) => call(u.token, '/configure', {
      provider: u.provider, model: u.model, mcpServerNames: u.mcpServerNames, llmCredentials: { apiKey: u.key },
    })));
    const before = await runPhase(1);
    // A rotates their key; once acknowledged, every later call must carry the new one.
    const a = users[0]!;
    a.key = newKey('AIza');
    await call(a.token, '/configure', { llmCredentials: { apiKey: a.key } });
    const after = await runPhase(2);
    // The operator caps C's tokens: C's next query is refused; then each user's usage.
    await limitOneUser(usage, base, users[2]!);
    await collectUsage(usage, users, wire);
    return [...before, ...after];
  } finally {
    server.close();
    await store.close();
    await Promise.all([mcp.close(), wire.close()]);
    rmSync(dataDir, { recursive: true, force: true });
    demoProcesses.started = stdioCounters.started - started;
    demoProcesses.ended = stdioCounters.exited - ended;
  }
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

function printTable(rows: DemoRow[]): void {
  const sorted = [...rows].sort((a, b) => a.user.localeCompare(b.user) || a.query - b.query);
  const col = (text: string, width: number): string => `${text} `.padEnd(width);
  console.log('Tools offered to each user\'s LLM (prefixed by server):');
  for (const user of [...new Set(sorted.map((r) => r.user))]) {
    const row = sorted.find((r) => r.user === user)!;
    console.log(`  ${user} (${row.mcpServers.join(' + ')}): ${row.toolsOffered.join(', ')}`);
  }
  console.log(
    `\n${col('user', 6)}${col('query', 7)}${col('configured', 28)}${col("user's key", 13)}${col('key on the wire', 18)}` +
      `${col('model on the wire', 29)}${col('tools called → server that ran them', 62)}ok`,
  );
  for (const r of sorted) {
    const calls = r.toolCalls.map((c) => `${c.tool.split('__')[1]} → ${c.server}${c.ok ? '' : ' (failed)'}`).join(', ');
    console.log(
      `${col(r.user, 6)}${col(String(r.query), 7)}${col(r.expected, 28)}${col(r.key, 13)}${col(r.keyOnWire, 18)}` +
        `${col(r.modelOnWire, 29)}${col(calls, 62)}${r.ok ? 'yes' : 'NO'}`,
    );
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runDemo().then(
    (rows) => {
      printTable(rows);
      const bad = rows.filter((r) => !r.ok).length;
      const rotated = rows.filter((r) => r.user === 'A' && r.phase === 2).length;
      console.log(
        bad === 0
          ? `\n${rows.length} agent queries, ${rows.reduce((n, r) => n + r.toolCalls.length, 0)} tool calls, each on its user's own LLM key, model and MCP servers; ` +
            `user A rotated their key and all ${rotated} later queries carried the new one.`
          : `\n${bad} of ${rows.length} queries had a tool call on another user's server, or an LLM call with another user's key, model or tools!`,
      );
      console.log(`stdio MCP processes: ${demoProcesses.started} started, ${demoProcesses.ended} ended.`);
      printUsage();
      const leftover = demoProcesses.started !== demoProcesses.ended;
      if (leftover) console.log('A stdio MCP process was left running!');
      if (!usageOk()) console.log('Usage booked to a user differs from what the wire reported, or the limited user was not refused!');
      process.exitCode = bad === 0 && !leftover && usageOk() ? 0 : 1;
    },
    (err: unknown) => {
      console.error('demo failed:', err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
