/**
 * The multi-user demo, on real SDK clients: user A configures
 * Google/gemini-2.5-flash with their own API key and the `warehouse` MCP
 * server, user B Anthropic/claude-3-5-haiku with theirs and the `crm` server
 * (two real Streamable HTTP MCP servers on 127.0.0.1), and user C
 * OpenAI/gpt-4o-mini with theirs and the `memory` server — the MCP project's
 * reference server-memory run over stdio as a child process of its own — all
 * at the same time. They fire interleaved queries; the app builds each user's
 * client with the AI SDK (`@ai-sdk/google`, `@ai-sdk/anthropic`,
 * `@ai-sdk/openai`) and calls the local wire server
 * (examples/providers/wire-server.ts), which records the key and model of
 * every call. Then A rotates their key and everyone queries again.
 *
 * Prints, per query, the (masked) key and model that reached the wire and the
 * tools seen, and the stdio processes started and ended; exits 1 on any call
 * with another user's key or model, with A's old key after the rotation was
 * acknowledged, or on a leftover process.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stdioCounters } from '../src/mcp.js';
import { createApp } from './app.js';
import { EXAMPLE_SERVERS, MEMORY_TOOLS, memoryServer, startExampleServers } from './mcp-servers.js';
import { exampleLlmRegistry } from './providers/registry.js';
import { keyFingerprint, maskKey, startWireServer, type WireCall } from './providers/wire-server.js';
import { generateSecret, mintToken } from './tokens.js';

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
  /** MCP server the user configured, and the tools the query saw on it. */
  mcpServer?: string;
  tools?: string[];
}

const USERS = [
  { name: 'A', provider: 'Google', model: 'gemini-2.5-flash', wire: 'google', mcpServerName: 'warehouse' },
  { name: 'B', provider: 'Anthropic', model: 'claude-3-5-haiku', wire: 'anthropic', mcpServerName: 'crm' },
  { name: 'C', provider: 'OpenAI', model: 'gpt-4o-mini', wire: 'openai', mcpServerName: 'memory' },
] as const;

const TOOLS_OF: Record<(typeof USERS)[number]['mcpServerName'], readonly string[]> = {
  warehouse: EXAMPLE_SERVERS.warehouse.map((t) => t.name),
  crm: EXAMPLE_SERVERS.crm.map((t) => t.name),
  memory: MEMORY_TOOLS,
};

/** stdio children of the last run: started and ended. */
export const demoProcesses = { started: 0, ended: 0 };

const newKey = (prefix: string): string => `${prefix}-${randomBytes(18).toString('base64url')}`;

export async function runDemo(queriesPerUser = 8): Promise<DemoRow[]> {
  const secret = generateSecret();
  const [mcp, wire] = await Promise.all([startExampleServers(), startWireServer()]);
  const dataDir = mkdtempSync(join(tmpdir(), 'kuc-demo-memory-'));
  const started = stdioCounters.started;
  const ended = stdioCounters.exited;
  const { app, store } = createApp({
    secret,
    llms: exampleLlmRegistry(wire.url),
    mcpServers: new Map([
      ['warehouse', mcp.warehouse.url],
      ['crm', mcp.crm.url],
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
        const prompt = `query ${i} from user ${u.name}`;
        const res = await call(u.token, '/query', { prompt });
        const ran = `${String(res['provider'])}/${String(res['model'])}`;
        const expected = `${u.provider}/${u.model}`;
        // The wire server's own record of this query's call: key and model as they reached it.
        const onWire: WireCall | undefined = wire.calls.find((c) => c.prompt === prompt);
        const wireOk = onWire !== undefined && onWire.label === u.wire && onWire.model === u.model && onWire.keyHash === keyFingerprint(key);
        // The user's own MCP server's tools, as listed through their own MCP client.
        const listed = (await call(u.token, '/mcp/tools')) as { server: unknown; tools: { name: string }[] };
        const tools = listed.tools.map((t) => t.name);
        const ownTools = TOOLS_OF[u.mcpServerName];
        const toolsOk = listed.server === u.mcpServerName && res['mcpServer'] === u.mcpServerName
          && sameList([...tools].sort(), ownTools.toSorted()) && sameList([...(res['tools'] as string[])].sort(), ownTools.toSorted());
        return {
          user: u.name,
          phase,
          query: i,
          expected,
          ran,
          key: maskKey(key),
          keyOnWire: onWire?.keyMasked ?? '(no call)',
          modelOnWire: onWire === undefined ? '(no call)' : `${onWire.label}/${onWire.model}`,
          ok: ran === expected && wireOk && res['user'] === u.uuid && toolsOk && !JSON.stringify(res).includes(key),
          mcpServer: String(listed.server),
          tools,
        };
      }),
    );
  };

  try {
    // The users configure at the same moment, each with their own key.
    await Promise.all(users.map((u) => call(u.token, '/configure', {
      provider: u.provider, model: u.model, mcpServerName: u.mcpServerName, llmCredentials: { apiKey: u.key },
    })));
    const before = await runPhase(1);
    // A rotates their key; once acknowledged, every later call must carry the new one.
    const a = users[0]!;
    a.key = newKey('AIza');
    await call(a.token, '/configure', { llmCredentials: { apiKey: a.key } });
    const after = await runPhase(2);
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
  console.log(
    `${col('user', 6)}${col('query', 7)}${col('configured', 28)}${col("user's key", 13)}${col('key on the wire', 18)}` +
      `${col('model on the wire', 29)}${col('MCP tools seen', 46)}ok`,
  );
  for (const r of sorted) {
    const all = r.tools ?? [];
    const tools = `${r.mcpServer ?? '-'}: ${all.slice(0, 2).join(', ')}${all.length > 2 ? ` +${all.length - 2}` : ''}`;
    console.log(
      `${col(r.user, 6)}${col(String(r.query), 7)}${col(r.expected, 28)}${col(r.key, 13)}${col(r.keyOnWire, 18)}` +
        `${col(r.modelOnWire, 29)}${col(tools, 46)}${r.ok ? 'yes' : 'NO'}`,
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
          ? `\n${rows.length} queries, each on its user's own key and model; user A rotated their key and all ${rotated} later calls carried the new one.`
          : `\n${bad} of ${rows.length} queries reached the wire with another key or model!`,
      );
      console.log(`stdio MCP processes: ${demoProcesses.started} started, ${demoProcesses.ended} ended.`);
      const leftover = demoProcesses.started !== demoProcesses.ended;
      if (leftover) console.log('A stdio MCP process was left running!');
      process.exitCode = bad === 0 && !leftover ? 0 : 1;
    },
    (err: unknown) => {
      console.error('demo failed:', err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
