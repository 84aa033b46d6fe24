/**
 * MCP servers for the examples and the tests:
 * - small but real Streamable HTTP servers: the SDK's `McpServer` behind its
 *   `StreamableHTTPServerTransport`, on 127.0.0.1 and an ephemeral port, one
 *   MCP session (and one McpServer) per connected client. Each counts the
 *   sessions it opened and closed, so a test can observe from the server side
 *   that a user's client really disconnected;
 * - the MCP project's reference servers from npm (devDependencies) as stdio
 *   registry entries: `memoryServer()` runs `@modelcontextprotocol/server-memory`
 *   as one child process per user, with the user's own knowledge-graph file.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import type { McpServerDefinition } from '../src/mcp.js';

const require = createRequire(import.meta.url);

/** The reference servers of the MCP project used here (devDependencies). */
export type ReferenceServer = 'server-everything' | 'server-memory' | 'server-filesystem';

/**
 * Absolute path of a reference server's entry script (its package.json
 * `bin`), to run as `node <path>`: much faster than `npx`.
 */
export function referenceServerBin(name: ReferenceServer): string {
  const manifest = require.resolve(`@modelcontextprotocol/${name}/package.json`);
  const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { bin: string | Record<string, string> };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : Object.values(pkg.bin)[0]!;
  return join(dirname(manifest), bin);
}

/** The tools of `@modelcontextprotocol/server-memory`, sorted. */
export const MEMORY_TOOLS = [
  'add_observations', 'create_entities', 'create_relations', 'delete_entities',
  'delete_observations', 'delete_relations', 'open_nodes', 'read_graph', 'search_nodes',
] as const;

/**
 * A stdio registry entry: server-memory as a child process per user, its
 * knowledge graph in `<dataDir>/<userUuid>.jsonl` (a per-user environment
 * variable). The operator fixes command and arguments; users only pick the name.
 */
export function memoryServer(dataDir: string): McpServerDefinition {
  const bin = referenceServerBin('server-memory');
  return (_config, userUuid) => ({
    command: process.execPath,
    args: [bin],
    env: { MEMORY_FILE_PATH: join(dataDir, `${userUuid}.jsonl`) },
  });
}

/** One tool of an example server: it echoes its input, tagged with the server name. */
export interface ExampleTool {
  name: string;
  description: string;
  /**
   * Milliseconds the tool takes; a call cancelled meanwhile (the client's
   * `notifications/cancelled`) stops and is counted in `cancelled`.
   * @default 0
   */
  delayMs?: number;
}

/** A tool call as the server received it. */
export interface ServedToolCall {
  readonly tool: string;
  readonly input: string | undefined;
  /** The MCP session it came on. */
  readonly sessionId: string | undefined;
  /** The `x-user` header of the request (registry entries may send the user's id). */
  readonly user: string | undefined;
  /** The call was cancelled by the client before it finished. */
  cancelled: boolean;
}

export interface RunningMcpServer {
  readonly name: string;
  /** The Streamable HTTP endpoint, e.g. `http://127.0.0.1:41234/mcp`. */
  readonly url: string;
  /** Sessions open now. */
  readonly openSessions: number;
  /** Sessions ever opened / closed (by the client's DELETE or the transport closing). */
  readonly opened: number;
  readonly closed: number;
  /** JSON-RPC requests received, by method (e.g. `tools/list`). */
  readonly requests: ReadonlyMap<string, number>;
  /** Every tool call received, oldest first. */
  readonly toolCalls: readonly ServedToolCall[];
  /** Adds a tool to every live session (each client gets `notifications/tools/list_changed`) and to later ones. */
  addTool(tool: ExampleTool): void;
  /** Resolves when the session count drops to `n` or below. */
  waitForOpenSessions(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** The two servers of the demo: different names, different tools. */
export const EXAMPLE_SERVERS = {
  warehouse: [
    { name: 'list_tables', description: 'Lists the tables of the data warehouse.' },
    { name: 'run_sql', description: 'Runs a read-only SQL query.' },
  ],
  crm: [
    { name: 'find_customer', description: 'Finds a customer by name.' },
    { name: 'open_ticket', description: 'Opens a support ticket.' },
  ],
} as const satisfies Record<string, readonly ExampleTool[]>;

function registerExampleTool(server: McpServer, name: string, tool: ExampleTool, served: ServedToolCall[]): void {
  server.registerTool(
    tool.name,
    { description: tool.description, inputSchema: { input: z.string().max(100_000).optional() } },
    async ({ input }, extra) => {
      const user = extra.requestInfo?.headers['x-user'];
      const call: ServedToolCall = { tool: tool.name, input, sessionId: extra.sessionId, user: typeof user === 'string' ? user : undefined, cancelled: false };
      served.push(call);
      if ((tool.delayMs ?? 0) > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, tool.delayMs);
          extra.signal.addEventListener('abort', () => {
            call.cancelled = true;
            clearTimeout(timer);
            resolve();
          }, { once: true });
        });
      }
      return { content: [{ type: 'text', text: `${name}.${tool.name}(${input ?? ''})` }] };
    },
  );
}

function buildServer(name: string, tools: readonly ExampleTool[], served: ServedToolCall[]): McpServer {
  const server = new McpServer({ name, version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } });
  for (const tool of tools) registerExampleTool(server, name, tool, served);
  return server;
}

/** Starts one MCP server with the given tools on 127.0.0.1 (port 0 = ephemeral). */
export async function startMcpServer(
  name: string,
  tools: readonly ExampleTool[],
  port = 0,
): Promise<RunningMcpServer> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const servers = new Set<McpServer>();
  const served: ServedToolCall[] = [];
  const toolList = [...tools];
  let opened = 0;
  let closed = 0;
  const requests = new Map<string, number>();
  const count = (body: unknown): void => {
    for (const message of Array.isArray(body) ? body : [body]) {
      const method = (message as { method?: unknown } | null)?.method;
      if (typeof method === 'string') requests.set(method, (requests.get(method) ?? 0) + 1);
    }
  };
  const waiters = new Set<() => void>();
  const changed = (): void => {
    for (const w of [...waiters]) w();
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/mcp') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found' }));
      return;
    }
    const sessionId = req.headers['mcp-session-id'];
    const existing = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    if (existing !== undefined) {
      if (req.method === 'POST') {
        const body = await readBody(req);
        count(body);
        await existing.handleRequest(req, res, body);
      } else {
        await existing.handleRequest(req, res);
      }
      return;
    }
    if (req.method !== 'POST' || sessionId !== undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(
        JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }),
      );
      return;
    }
    const body = await readBody(req);
    count(body);
    if (!isInitializeRequest(body)) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(
        JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Expected an initialize request' }, id: null }),
      );
      return;
    }
    let closedOnce = false;
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, transport);
        opened++;
        changed();
      },
    });
    transport.onclose = () => {
      const id = transport.sessionId;
      if (closedOnce || id === undefined || !sessions.delete(id)) return;
      closedOnce = true;
      closed++;
      changed();
    };
    const mcpServer = buildServer(name, toolList, served);
    servers.add(mcpServer);
    mcpServer.server.onclose = () => servers.delete(mcpServer);
    await mcpServer.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  const http: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'internal_error', message: String(error) }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '127.0.0.1', () => resolve());
  });
  const address = http.address() as AddressInfo;

  return {
    name,
    url: `http://127.0.0.1:${address.port}/mcp`,
    get openSessions() {
      return sessions.size;
    },
    get opened() {
      return opened;
    },
    get closed() {
      return closed;
    },
    requests,
    toolCalls: served,
    addTool(tool) {
      toolList.push(tool);
      for (const server of servers) registerExampleTool(server, name, tool, served);
    },
    waitForOpenSessions(n, timeoutMs = 5000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (sessions.size > n) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${name}: still ${sessions.size} open MCP sessions after ${timeoutMs} ms (wanted ≤ ${n})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const transport of [...sessions.values()]) await transport.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** Starts the demo's `warehouse` and `crm` servers. */
export async function startExampleServers(): Promise<{ warehouse: RunningMcpServer; crm: RunningMcpServer; close(): Promise<void> }> {
  const [warehouse, crm] = await Promise.all([
    startMcpServer('warehouse', EXAMPLE_SERVERS.warehouse),
    startMcpServer('crm', EXAMPLE_SERVERS.crm),
  ]);
  return {
    warehouse,
    crm,
    async close() {
      await Promise.all([warehouse.close(), crm.close()]);
    },
  };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 1_000_000) throw new Error('MCP request body too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}
