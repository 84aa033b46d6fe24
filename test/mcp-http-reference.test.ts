/**
 * Streamable HTTP against the MCP project's reference server-everything
 * (`streamableHttp` mode, a child process on a fixed port): one session per
 * user, sessions terminated on close, the server restarted mid-run (recovery
 * time measured, 0 wrong-user answers), the bound, a shared target.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ContextStore, configureUser, runAsUser } from '../src/index.js';
import {
  McpConnectError,
  callUserMcpTool,
  createMcpClientFactory,
  getUserMcpConnection,
  type McpClientFactory,
  type McpClientFactoryOptions,
} from '../src/mcp.js';
import { EVERYTHING, startEverythingHttp, textOf, until, type EverythingHttp } from './support/mcp-reference.js';

const PORT = 43_110;
let server: EverythingHttp;
const stores: ContextStore[] = [];

function newStore(extra: Partial<McpClientFactoryOptions> = {}): { store: ContextStore; mcp: McpClientFactory } {
  const url = `http://127.0.0.1:${PORT}/mcp`;
  const mcp = createMcpClientFactory({
    servers: { everything: { url }, 'everything-shared': { url, shared: true } },
    connectTimeout: 5000,
    backoff: { initialDelay: 100, maxDelay: 500 },
    ...extra,
  });
  const store = new ContextStore({ resources: { mcpClient: mcp } });
  stores.push(store);
  return { store, mcp };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  server = await startEverythingHttp(PORT);
}, 30_000);

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await server?.stop();
});

describe('Streamable HTTP with the reference server-everything', { timeout: 60_000 }, () => {
  it('one session per user, answers only for that user, every session terminated on close', async () => {
    const { store, mcp } = newStore();
    const initialised = server.initialised;
    const terminated = server.terminated;
    const users = Array.from({ length: 10 }, () => randomUUID());
    await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ mcpServerName: 'everything' }), { store })));
    const ledger = await Promise.all(users.flatMap((u) => Array.from({ length: 4 }, (_, i) =>
      runAsUser(u, async () => {
        await delay(Math.random() * 10);
        const text = textOf(await callUserMcpTool(EVERYTHING.echo, { message: `${u}#${i}` }));
        return { u, i, text, session: (await getUserMcpConnection())!.sessionId };
      }, { store }))));
    expect(ledger.filter((r) => r.text !== `Echo: ${r.u}#${r.i}`)).toEqual([]);
    const sessions = new Map<string, Set<string | undefined>>();
    for (const r of ledger) sessions.set(r.u, (sessions.get(r.u) ?? new Set()).add(r.session));
    for (const set of sessions.values()) expect(set.size).toBe(1);
    expect(new Set(ledger.map((r) => r.session)).size).toBe(10);
    await until(() => server.initialised - initialised === 10, 2000, 'the server to log 10 sessions');
    expect(mcp.stats.live).toBe(10);
    await store.close();
    await mcp.settle();
    await until(() => server.terminated - terminated === 10, 3000, 'the server to log 10 terminations');
    expect(mcp.stats.live).toBe(0);
  });

  it('the server restarted mid-run: every user recovers within seconds, with 0 wrong-user answers', async () => {
    const { store, mcp } = newStore();
    const users = Array.from({ length: 6 }, () => randomUUID());
    await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ mcpServerName: 'everything' }), { store })));
    const before = new Map(await Promise.all(users.map((u) =>
      runAsUser(u, async () => [u, (await getUserMcpConnection())!.sessionId] as const, { store }))));
    let restartedAt = 0;
    let stopping = false;
    const ledger: { u: string; at: number; ok: boolean; wrong: boolean; code?: string }[] = [];
    // Each user calls in a bounded loop while the server goes down and comes back.
    const loops = users.map(async (u) => {
      for (let i = 0; i < 400 && !(stopping && ledger.some((r) => r.u === u && r.ok && r.at > restartedAt && restartedAt > 0)); i++) {
        try {
          const text = await runAsUser(u, async () => textOf(await callUserMcpTool(EVERYTHING.echo, { message: `${u}:${i}` })), { store });
          ledger.push({ u, at: performance.now(), ok: true, wrong: text !== `Echo: ${u}:${i}` });
        } catch (error) {
          // Only the library's MCP errors (stable codes), never anything else.
          ledger.push({ u, at: performance.now(), ok: false, wrong: false, code: (error as { code?: string }).code ?? String(error) });
        }
        await delay(25);
      }
    });
    await delay(300);
    await server.stop();
    await delay(500);
    server = await startEverythingHttp(PORT);
    restartedAt = performance.now();
    stopping = true;
    await Promise.all(loops);

    expect(ledger.filter((r) => r.wrong)).toEqual([]);
    const codes = new Set(ledger.filter((r) => !r.ok).map((r) => r.code));
    for (const code of codes) expect(['ERR_MCP_CONNECT_FAILED', 'ERR_MCP_BACKOFF', 'ERR_MCP_CONNECTION_LOST']).toContain(code);
    const recovery = users.map((u) => {
      const first = ledger.find((r) => r.u === u && r.ok && r.at > restartedAt);
      expect(first, `user ${u} never recovered`).toBeDefined();
      return first!.at - restartedAt;
    });
    console.log(`recovery after restart (ms): max ${Math.max(...recovery).toFixed(0)}, per user ${recovery.map((r) => r.toFixed(0)).join(', ')}`);
    expect(Math.max(...recovery)).toBeLessThan(3000);
    // Each user is on a new session now, still their own.
    const after = await Promise.all(users.map((u) => runAsUser(u, async () => (await getUserMcpConnection())!.sessionId, { store })));
    after.forEach((s, i) => expect(s).not.toBe(before.get(users[i]!)));
    expect(new Set(after).size).toBe(users.length);
    expect(mcp.stats.live).toBe(users.length);
  });

  it('maxConnections bounds the sessions; an evicted user gets a new one on demand', async () => {
    const { store, mcp } = newStore({ maxConnections: 2 });
    const terminated = server.terminated;
    const users = Array.from({ length: 5 }, () => randomUUID());
    for (const u of users) {
      const text = await runAsUser(u, async () => {
        await configureUser({ mcpServerName: 'everything' });
        return textOf(await callUserMcpTool(EVERYTHING.echo, { message: u }));
      }, { store });
      expect(text).toBe(`Echo: ${u}`);
      expect(mcp.stats.live).toBeLessThanOrEqual(2);
    }
    expect(mcp.stats.evicted).toBe(3);
    await mcp.settle();
    await until(() => server.terminated - terminated === 3, 3000, 'the evicted sessions to be terminated');
    const again = await runAsUser(users[0]!, async () => textOf(await callUserMcpTool(EVERYTHING.echo, { message: 'back' })), { store });
    expect(again).toBe('Echo: back');
    expect(mcp.stats.live).toBe(2);
  });

  it('a shared target serves every user on one session', async () => {
    const { store, mcp } = newStore();
    const users = Array.from({ length: 5 }, () => randomUUID());
    const sessions = await Promise.all(users.map((u) => runAsUser(u, async () => {
      await configureUser({ mcpServerName: 'everything-shared' });
      expect(textOf(await callUserMcpTool(EVERYTHING.echo, { message: u }))).toBe(`Echo: ${u}`);
      return (await getUserMcpConnection())!.sessionId;
    }, { store })));
    expect(new Set(sessions).size).toBe(1);
    expect(mcp.stats.live).toBe(1);
  });

  it('a server that is down fails with a stable code, then backs off', async () => {
    const { store } = newStore({ servers: { gone: { url: `http://127.0.0.1:${PORT + 1}/mcp` } }, backoff: { initialDelay: 1000 } });
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: 'gone' });
      const first = await getUserMcpConnection().then(() => null, (e: unknown) => e);
      expect(first).toBeInstanceOf(McpConnectError);
      expect((first as McpConnectError).code).toBe('ERR_MCP_CONNECT_FAILED');
      expect((first as McpConnectError).retryAfterMs).toBe(1000);
      const second = await getUserMcpConnection().then(() => null, (e: unknown) => e);
      expect((second as McpConnectError).code).toBe('ERR_MCP_BACKOFF');
    }, { store });
  });
});
