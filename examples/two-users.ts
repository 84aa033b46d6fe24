/**
 * The multi-user demo: user A configures Google/gemini-2.5-flash and the
 * `warehouse` MCP server, user B Anthropic/claude-3-5-haiku and the `crm`
 * server (two real Streamable HTTP MCP servers on 127.0.0.1), and user C
 * OpenAI/gpt-4o-mini and the `memory` server — the MCP project's reference
 * server-memory run over stdio as a child process of its own, with its own
 * data file — all at the same time; then they fire interleaved queries and
 * list their tools. Prints who ran on what with which tools, and the stdio
 * processes started and ended; exits 1 on any cross-talk or leftover process.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stdioCounters } from '../src/mcp.js';
import { createApp } from './app.js';
import { EXAMPLE_SERVERS, MEMORY_TOOLS, memoryServer, startExampleServers } from './mcp-servers.js';
import { generateSecret, mintToken } from './tokens.js';

export interface DemoRow {
  user: string;
  query: number;
  expected: string;
  ran: string;
  ok: boolean;
  /** MCP server the user configured, and the tools the query saw on it. */
  mcpServer?: string;
  tools?: string[];
}

const USERS = [
  { name: 'A', provider: 'Google', model: 'gemini-2.5-flash', mcpServerName: 'warehouse' },
  { name: 'B', provider: 'Anthropic', model: 'claude-3-5-haiku', mcpServerName: 'crm' },
  { name: 'C', provider: 'OpenAI', model: 'gpt-4o-mini', mcpServerName: 'memory' },
] as const;

const TOOLS_OF: Record<(typeof USERS)[number]['mcpServerName'], readonly string[]> = {
  warehouse: EXAMPLE_SERVERS.warehouse.map((t) => t.name),
  crm: EXAMPLE_SERVERS.crm.map((t) => t.name),
  memory: MEMORY_TOOLS,
};

/** stdio children of the last run: started and ended. */
export const demoProcesses = { started: 0, ended: 0 };

export async function runDemo(queriesPerUser = 8): Promise<DemoRow[]> {
  const secret = generateSecret();
  const mcp = await startExampleServers();
  const dataDir = mkdtempSync(join(tmpdir(), 'kuc-demo-memory-'));
  const started = stdioCounters.started;
  const ended = stdioCounters.exited;
  const { app, store } = createApp({
    secret,
    mcpServers: new Map([
      ['warehouse', mcp.warehouse.url],
      ['crm', mcp.crm.url],
      ['memory', memoryServer(dataDir)],
    ]),
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const users = USERS.map((u) => ({ ...u, uuid: randomUUID(), token: '' }));
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

  try {
    // Both users configure at the same moment.
    await Promise.all(users.map((u) => call(u.token, '/configure', { provider: u.provider, model: u.model, mcpServerName: u.mcpServerName })));
    // Interleaved queries: all in flight together, in shuffled order.
    const jobs = users.flatMap((u) => Array.from({ length: queriesPerUser }, (_, i) => ({ u, i })));
    jobs.sort(() => Math.random() - 0.5);
    return await Promise.all(
      jobs.map(async ({ u, i }) => {
        const res = await call(u.token, '/query', { prompt: `query ${i} from user ${u.name}` });
        const ran = `${String(res['provider'])}/${String(res['model'])}`;
        const expected = `${u.provider}/${u.model}`;
        const answeredBy = String(res['answer']).startsWith(`[${expected}]`);
        // The user's own MCP server's tools, as listed through their own MCP client.
        const listed = (await call(u.token, '/mcp/tools')) as { server: unknown; tools: { name: string }[] };
        const tools = listed.tools.map((t) => t.name);
        const ownTools = TOOLS_OF[u.mcpServerName];
        const toolsOk = listed.server === u.mcpServerName && res['mcpServer'] === u.mcpServerName
          && sameList([...tools].sort(), ownTools.toSorted()) && sameList([...(res['tools'] as string[])].sort(), ownTools.toSorted());
        return {
          user: u.name,
          query: i,
          expected,
          ran,
          ok: ran === expected && answeredBy && res['user'] === u.uuid && toolsOk,
          mcpServer: String(listed.server),
          tools,
        };
      }),
    );
  } finally {
    server.close();
    await store.close();
    await mcp.close();
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
  console.log('user  query  configured                    ran on                        MCP tools seen                     ok');
  for (const r of sorted) {
    const all = r.tools ?? [];
    const tools = `${r.mcpServer ?? '-'}: ${all.slice(0, 2).join(', ')}${all.length > 2 ? ` +${all.length - 2}` : ''}`;
    console.log(`${r.user.padEnd(6)}${String(r.query).padEnd(7)}${r.expected.padEnd(30)}${r.ran.padEnd(30)}${tools.padEnd(35)}${r.ok ? 'yes' : 'CROSS-TALK'}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runDemo().then(
    (rows) => {
      printTable(rows);
      const bad = rows.filter((r) => !r.ok).length;
      console.log(bad === 0 ? `\n${rows.length} queries, 0 cross-user answers.` : `\n${bad} of ${rows.length} queries ran on another user's configuration!`);
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
