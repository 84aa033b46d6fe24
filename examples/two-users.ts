/**
 * The two-user demo: user A configures Google/gemini-2.5-flash and the
 * `warehouse` MCP server while user B configures Anthropic/claude-3-5-haiku
 * and the `crm` MCP server at the same time (two real MCP servers on
 * 127.0.0.1), then both fire interleaved queries and list their tools.
 * Prints who ran on what with which tools; exits 1 on any cross-talk.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createApp } from './app.js';
import { EXAMPLE_SERVERS, startExampleServers } from './mcp-servers.js';
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
] as const;

export async function runDemo(queriesPerUser = 8): Promise<DemoRow[]> {
  const secret = generateSecret();
  const mcp = await startExampleServers();
  const { app, store } = createApp({
    secret,
    mcpServers: new Map([
      ['warehouse', mcp.warehouse.url],
      ['crm', mcp.crm.url],
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
        const ownTools: readonly string[] = EXAMPLE_SERVERS[u.mcpServerName].map((t) => t.name);
        const toolsOk = listed.server === u.mcpServerName && res['mcpServer'] === u.mcpServerName
          && sameList(tools, ownTools) && sameList(res['tools'] as string[], ownTools);
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
  }
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

function printTable(rows: DemoRow[]): void {
  const sorted = [...rows].sort((a, b) => a.user.localeCompare(b.user) || a.query - b.query);
  console.log('user  query  configured                    ran on                        MCP tools seen                     ok');
  for (const r of sorted) {
    const tools = `${r.mcpServer ?? '-'}: ${(r.tools ?? []).join(', ')}`;
    console.log(`${r.user.padEnd(6)}${String(r.query).padEnd(7)}${r.expected.padEnd(30)}${r.ran.padEnd(30)}${tools.padEnd(35)}${r.ok ? 'yes' : 'CROSS-TALK'}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runDemo().then(
    (rows) => {
      printTable(rows);
      const bad = rows.filter((r) => !r.ok).length;
      console.log(bad === 0 ? `\n${rows.length} queries, 0 cross-user answers.` : `\n${bad} of ${rows.length} queries ran on another user's configuration!`);
      process.exitCode = bad === 0 ? 0 : 1;
    },
    (err: unknown) => {
      console.error('demo failed:', err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
