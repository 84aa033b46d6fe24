/**
 * Several MCP servers per user (`mcpServerNames`) from the operator's
 * registry, next to the single `mcpServerName`, and the registry's tool
 * policy and prefix, on real MCP SDK servers over Streamable HTTP.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_SERVERS, startMcpServer, type RunningMcpServer } from '../examples/mcp-servers.js';
import { ContextStore, configureUser, getUserMcpClient, runAsUser } from '../src/index.js';
import {
  McpConnectError,
  McpToolNotAllowedError,
  UserMcpConnection,
  UserMcpServers,
  callUserMcpTool,
  createMcpClientFactory,
  getUserMcpConnection,
  getUserMcpConnections,
  getUserMcpTools,
  type McpServerDefinition,
} from '../src/mcp.js';
import { textOf } from './support/mcp-reference.js';

let warehouse: RunningMcpServer;
let crm: RunningMcpServer;
const stores: ContextStore[] = [];

beforeAll(async () => {
  [warehouse, crm] = await Promise.all([startMcpServer('warehouse', EXAMPLE_SERVERS.warehouse), startMcpServer('crm', EXAMPLE_SERVERS.crm)]);
});
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await Promise.all([warehouse.close(), crm.close()]);
});

function newStore(servers: Record<string, McpServerDefinition>): ContextStore {
  const store = new ContextStore({ resources: { mcpClient: createMcpClientFactory({ servers, backoff: { initialDelay: 10, maxDelay: 20 } }) } });
  stores.push(store);
  return store;
}

describe('several MCP servers per user', () => {
  it('mcpServerNames connects each named server (duplicates once), in order; mcpServerName alone keeps its single connection', async () => {
    const store = newStore({ warehouse: warehouse.url, crm: crm.url });
    const u = randomUUID();
    await runAsUser(u, async () => {
      await configureUser({ mcpServerName: 'crm' });
      expect(await getUserMcpClient()).toBeInstanceOf(UserMcpConnection);
      expect((await getUserMcpConnections()).map((c) => c.serverName)).toEqual(['crm']);
      await configureUser({ mcpServerNames: ['warehouse', 'crm', 'warehouse'] });
      const value = await getUserMcpClient();
      expect(value).toBeInstanceOf(UserMcpServers);
      const connections = await getUserMcpConnections();
      expect(connections.map((c) => c.serverName)).toEqual(['warehouse', 'crm']);
      expect(connections.every((c) => c.connected && c.userUuid === u)).toBe(true);
      expect((value as UserMcpServers).get('crm')).toBe(connections[1]);
      // The single-server helpers use the first server.
      expect((await getUserMcpConnection())!.serverName).toBe('warehouse');
      expect((await getUserMcpTools()).map((t) => t.name)).toEqual(['list_tables', 'run_sql']);
      expect(textOf(await callUserMcpTool('run_sql', { input: 'q' }))).toBe('warehouse.run_sql(q)');
      await configureUser({ mcpServerNames: [] });
      expect(await getUserMcpConnections()).toEqual([]);
    }, { store });
  });

  it('a name not in the registry is refused, saying what the registry has', async () => {
    const store = newStore({ warehouse: warehouse.url });
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerNames: ['warehouse', 'nope'] });
      await expect(async () => getUserMcpClient()).rejects.toThrow(/MCP server "nope" is not in the registry \(options.servers has warehouse\)/);
    }, { store });
  });

  it('one server down leaves the others usable; all down fails like one server', async () => {
    const dead = 'http://127.0.0.1:9/mcp';
    const store = newStore({ warehouse: warehouse.url, dead, dead2: dead });
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerNames: ['dead', 'warehouse'] });
      const [down, up] = await getUserMcpConnections();
      expect(down!.connected).toBe(false);
      expect(textOf(await up!.callTool('list_tables', { input: 'x' }))).toBe('warehouse.list_tables(x)');
    }, { store });
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerNames: ['dead', 'dead2'] });
      await expect(getUserMcpConnections()).rejects.toBeInstanceOf(McpConnectError);
    }, { store });
  });

  it('switching servers closes the connections of the old configuration (the server sees its session end)', async () => {
    const store = newStore({ warehouse: warehouse.url, crm: crm.url });
    const closed = crm.closed;
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerNames: ['crm', 'warehouse'] });
      await getUserMcpConnections();
      await configureUser({ mcpServerNames: ['warehouse'] });
      await getUserMcpConnections();
    }, { store });
    await crm.waitForOpenSessions(0);
    expect(crm.closed - closed).toBe(1);
  });
});

describe('the registry\'s tool policy and prefix', () => {
  it('allow and hide (names and prefix*) filter listTools and refuse callTool without sending it', async () => {
    const store = newStore({
      crm: { url: crm.url, tools: { hide: ['open_*'] }, toolPrefix: 'sales' },
      warehouse: { url: warehouse.url, tools: { allow: ['list_*', 'run_sql'], hide: ['run_sql'] } },
    });
    const served = crm.toolCalls.length;
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerNames: ['crm', 'warehouse'] });
      const [c, w] = await getUserMcpConnections();
      expect((await c!.listTools()).map((t) => t.name)).toEqual(['find_customer']);
      expect(c!.toolPrefix).toBe('sales');
      expect((await w!.listTools()).map((t) => t.name)).toEqual(['list_tables']);
      expect(await c!.listTools()).toBe(await c!.listTools()); // the same array while the catalog is unchanged
      await expect(c!.callTool('open_ticket', {})).rejects.toBeInstanceOf(McpToolNotAllowedError);
      await expect(w!.callTool('run_sql', {})).rejects.toThrow(/hidden by the operator's tool policy/);
    }, { store });
    expect(crm.toolCalls.length).toBe(served);
  });

  it('refuses a policy it does not understand, naming the key', () => {
    const store = newStore({ crm: { url: crm.url, tools: { deny: ['x'] } as never } });
    return runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: 'crm' });
      await expect(async () => getUserMcpClient()).rejects.toThrow(/unknown key "deny" in the tools policy of an MCP target \(use allow or hide\)/);
    }, { store });
  });
});
