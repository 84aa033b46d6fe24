/**
 * The example app's answers when a user's MCP server cannot be used: stable
 * JSON error codes with 502/503 (never a 500 with a stack), and a stdio child
 * that died is replaced on the next request.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createStore } from '../examples/app.js';
import { MEMORY_TOOLS, memoryServer } from '../examples/mcp-servers.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import { runAsUser, type ContextStore } from '../src/index.js';
import { getUserMcpConnection, type McpServerDefinition } from '../src/mcp.js';
import { fakeLlmResources } from './support/fake-llm.js';
import { processAlive, until } from './support/mcp-reference.js';

let dataDir: string;
let server: Server;
let store: ContextStore;
const secret = generateSecret();

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'kuc-mcp-app-'));
  const mcpServers = new Map<string, McpServerDefinition>([
    ['memory', memoryServer(dataDir)],
    ['broken', { command: join(dataDir, 'no-such-server') }],
    ['down', 'http://127.0.0.1:43121/mcp'],
  ]);
  // MCP failures only: the in-process fake LLM (the app on real SDK clients is test/examples/ai-app.test.ts).
  const created = createApp({ secret, mcpServers, store: createStore({ resources: fakeLlmResources() }, mcpServers) });
  store = created.store;
  server = created.app.listen(0, '127.0.0.1');
});

afterAll(async () => {
  server?.close();
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function as(user: string) {
  return { authorization: `Bearer ${mintToken(secret, user)}` };
}

describe('example app with MCP servers that fail', { timeout: 60_000 }, () => {
  for (const name of ['broken', 'down']) {
    it(`"${name}": 502 mcp_unavailable, then 503 mcp_backoff with Retry-After; no stack`, async () => {
      const user = randomUUID();
      expect((await request(server).post('/configure').set(as(user)).send({ mcpServerName: name })).status).toBe(200);
      const first = await request(server).get('/mcp/tools').set(as(user));
      expect({ status: first.status, error: first.body.error }).toEqual({ status: 502, error: 'mcp_unavailable' });
      expect(first.body.message).toContain(`"${name}"`);
      expect(first.text).not.toContain('    at ');
      const second = await request(server).get('/mcp/tools').set(as(user));
      expect({ status: second.status, error: second.body.error }).toEqual({ status: 503, error: 'mcp_backoff' });
      expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(second.text).not.toContain('    at ');
    });
  }

  it('a stdio child that died is replaced on the next request', async () => {
    const user = randomUUID();
    await request(server).post('/configure').set(as(user)).send({ mcpServerName: 'memory' });
    const listed = await request(server).get('/mcp/tools').set(as(user));
    expect(listed.status).toBe(200);
    expect(listed.body.tools.map((t: { name: string }) => t.name).sort()).toEqual([...MEMORY_TOOLS]);
    const connection = (await runAsUser(user, () => getUserMcpConnection(), { store }))!;
    const pid = connection.pid!;
    process.kill(pid, 'SIGKILL');
    // Until Node has reaped the child, a cached catalog may still be served; once it has, the link is dead.
    await until(() => !connection.connected, 10_000, 'the library to see the child gone');

    const again = await request(server).get('/mcp/tools').set(as(user));
    expect(again.status).toBe(200);
    expect(again.body.server).toBe('memory');
    const newPid = await runAsUser(user, async () => (await getUserMcpConnection())!.pid!, { store });
    expect(newPid).not.toBe(pid);
    expect(processAlive(newPid)).toBe(true);
  });
});
