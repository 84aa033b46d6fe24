/**
 * stdio MCP servers from the operator's registry, against the MCP project's
 * reference servers (server-memory, server-everything, server-filesystem)
 * run as real child processes: one child per user and configuration, the
 * per-user environment, stderr stamped with the user, switching, eviction,
 * close, a child killed mid-run, and process counts from /proc before and after.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ContextStore, configureUser, runAsUser } from '../src/index.js';
import {
  McpBackoffError,
  McpConnectError,
  McpConnectionLostError,
  createMcpClientFactory,
  getUserMcpConnection,
  getUserMcpTools,
  callUserMcpTool,
  stdioCounters,
  type McpClientFactory,
  type McpClientFactoryOptions,
} from '../src/mcp.js';
import { EVERYTHING, MEMORY_TOOLS, childProcesses, processAlive, referenceBin, textOf, until } from './support/mcp-reference.js';

const NODE = process.execPath;
let dataDir: string;
const stores: ContextStore[] = [];
const stderrLines: { line: string; userUuid: string; server: string; pid: number | undefined }[] = [];

function servers(): McpClientFactoryOptions['servers'] {
  return {
    memory: (_config, userUuid) => ({
      command: NODE,
      args: [referenceBin('server-memory')],
      env: { MEMORY_FILE_PATH: join(dataDir, `${userUuid}.jsonl`) },
    }),
    everything: (_config, userUuid) => ({ command: NODE, args: [referenceBin('server-everything'), 'stdio'], env: { KUC_USER: userUuid } }),
    files: { command: NODE, args: [referenceBin('server-filesystem'), dataDir], cwd: dataDir },
    'everything-shared': { command: NODE, args: [referenceBin('server-everything'), 'stdio'], shared: true },
    // A child that ignores SIGTERM: closing must escalate to SIGKILL.
    stubborn: {
      command: NODE,
      args: ['--import', 'data:text/javascript,process.on("SIGTERM",()=>{})', referenceBin('server-everything'), 'stdio'],
    },
    broken: { command: join(dataDir, 'no-such-server') },
  };
}

function newStore(extra: Partial<McpClientFactoryOptions> = {}): { store: ContextStore; mcp: McpClientFactory } {
  const mcp = createMcpClientFactory({
    servers: servers(),
    // Generous: eight node children starting at once on a loaded 2-core CI machine.
    connectTimeout: 45_000,
    killTimeout: 1000,
    stderr: (line, info) => stderrLines.push({ line, ...info }),
    ...extra,
  });
  const store = new ContextStore({ resources: { mcpClient: mcp } });
  stores.push(store);
  return { store, mcp };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const jitter = () => delay(Math.random() * 10);

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'kuc-mcp-stdio-'));
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
  // Every child this file started has ended and been reaped.
  console.log(`stdio children: ${stdioCounters.started} started, ${stdioCounters.exited} ended`);
  expect(stdioCounters.exited).toBe(stdioCounters.started);
  expect(childProcesses()).toEqual({ live: [], zombies: [] });
});

describe('the stdio transport is loaded with the first stdio server', () => {
  it('importing koa-user-context/mcp (and an HTTP-only factory) leaves process.stdin unbuilt; the first stdio link builds it', () => {
    // The SDK's stdio module imports node:process as an ES module, which makes Node build process.stdin
    // (measured: about 3 µs more per HTTP request of the process); the getter below records who asks.
    const script = `
      const d = Object.getOwnPropertyDescriptor(process, 'stdin');
      let built = false;
      Object.defineProperty(process, 'stdin', { configurable: true, enumerable: d.enumerable, get() { built = true; return d.get.call(process); } });
      const mcp = await import(${JSON.stringify(new URL('../src/mcp.ts', import.meta.url).href)});
      mcp.createMcpClientFactory({ servers: { crm: 'http://127.0.0.1:9/mcp' } });
      const before = built;
      await import('@modelcontextprotocol/sdk/client/stdio.js');
      console.log(JSON.stringify({ before, after: built }));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ before: false, after: true });
  });
});

describe('stdio MCP servers (reference servers as child processes)', { timeout: 120_000 }, () => {
  it('one child per user, each with its own environment and data; stderr stamped with the user; all reaped on close', async () => {
    const before = childProcesses();
    const started = stdioCounters.started;
    const exited = stdioCounters.exited;
    const { store, mcp } = newStore();
    const users = Array.from({ length: 8 }, () => randomUUID());
    await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ mcpServerName: 'memory' }), { store })));
    // Interleaved: each user stores an entity named after themself, then reads the whole graph.
    // (server-memory rewrites its file on every call, so one user's calls go one after another.)
    const perUser = await Promise.all(
      users.map(async (u) => {
        const rows: { u: string; names: string[]; pid: number | undefined }[] = [];
        for (let i = 0; i < 3; i++) {
          rows.push(await runAsUser(u, async () => {
            await jitter();
            await callUserMcpTool('create_entities', {
              entities: [{ name: `${u}-${i}`, entityType: 'person', observations: [`owned by ${u}`] }],
            });
            await jitter();
            const graph = JSON.parse(textOf(await callUserMcpTool('read_graph'))) as { entities: { name: string }[] };
            const pid = (await getUserMcpConnection())!.pid;
            return { u, names: graph.entities.map((e) => e.name), pid };
          }, { store }));
        }
        return rows;
      }),
    );
    const ledger = perUser.flat();
    let wrong = 0;
    for (const { u, names } of ledger) wrong += names.filter((n) => !n.startsWith(u)).length;
    expect(wrong).toBe(0);
    // Each user's final graph holds exactly their three entities.
    for (const u of users) {
      const names = await runAsUser(u, async () => (JSON.parse(textOf(await callUserMcpTool('read_graph'))) as { entities: { name: string }[] }).entities.map((e) => e.name), { store });
      expect(names.sort()).toEqual([0, 1, 2].map((i) => `${u}-${i}`));
    }
    // Exactly one process per user: 8 distinct pids, 8 more children, 8 started.
    const pids = new Map(ledger.map(({ u, pid }) => [u, pid]));
    expect(new Set(pids.values()).size).toBe(8);
    expect(childProcesses().live.length - before.live.length).toBe(8);
    expect(stdioCounters.started - started).toBe(8);
    expect(mcp.stats.live).toBe(8);
    // The children's stderr is logged with the user whose child it is.
    for (const u of users) {
      const lines = stderrLines.filter((l) => l.pid === pids.get(u));
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.every((l) => l.userUuid === u && l.server === 'memory')).toBe(true);
    }
    expect(names(await runAsUser(users[0]!, () => getUserMcpTools(), { store }))).toEqual([...MEMORY_TOOLS]);

    await store.close();
    await mcp.settle();
    const after = childProcesses();
    expect(after.live.length).toBe(before.live.length);
    expect(after.zombies).toEqual([]);
    for (const pid of pids.values()) expect(processAlive(pid!)).toBe(false);
    expect(stdioCounters.exited - exited).toBe(8);
  });

  it("a child gets the operator's per-user environment and nothing else of this process's", async () => {
    process.env['KUC_MCP_TEST_SECRET'] = 'must-not-leak';
    try {
      const { store } = newStore();
      const users = Array.from({ length: 4 }, () => randomUUID());
      const seen = await Promise.all(users.map((u) => runAsUser(u, async () => {
        await configureUser({ mcpServerName: 'everything' });
        return JSON.parse(textOf(await callUserMcpTool(EVERYTHING.env))) as Record<string, string>;
      }, { store })));
      seen.forEach((env, i) => {
        expect(env['KUC_USER']).toBe(users[i]);
        expect(env['KUC_MCP_TEST_SECRET']).toBeUndefined();
      });
    } finally {
      delete process.env['KUC_MCP_TEST_SECRET'];
    }
  });

  it('switching server ends the old child and starts the new one', async () => {
    const { store, mcp } = newStore();
    const user = randomUUID();
    const first = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'memory' });
      return { pid: (await getUserMcpConnection())!.pid!, tools: names(await getUserMcpTools()) };
    }, { store });
    expect(first.tools).toEqual([...MEMORY_TOOLS]);
    const second = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'files' });
      return { pid: (await getUserMcpConnection())!.pid!, tools: names(await getUserMcpTools()) };
    }, { store });
    expect(second.tools).toContain('read_text_file');
    expect(second.pid).not.toBe(first.pid);
    await mcp.settle();
    await until(() => !processAlive(first.pid), 5000, 'the old child to exit');
    expect(processAlive(second.pid)).toBe(true);
  });

  it('evicting a user ends their child only after their in-flight call', async () => {
    const { store, mcp } = newStore();
    const user = randomUUID();
    const pid = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'everything' });
      return (await getUserMcpConnection())!.pid!;
    }, { store });
    const call = runAsUser(user, () => callUserMcpTool(EVERYTHING.slow, { duration: 2, steps: 2 }), { store });
    await until(() => mcp.stats.inUse === 1, 5000, 'the call to be in flight');
    expect(store.evict(user)).toBe(true);
    await delay(200);
    expect(processAlive(pid)).toBe(true);
    expect(textOf(await call)).toMatch(/completed/i);
    await mcp.settle();
    await until(() => !processAlive(pid), 5000, 'the evicted user\'s child to exit');
  });

  it('a killed child is replaced on the next call; concurrent callers share one restart; a call cut mid-way fails with ERR_MCP_CONNECTION_LOST', async () => {
    const { store, mcp } = newStore();
    const user = randomUUID();
    const pid = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'everything' });
      return (await getUserMcpConnection())!.pid!;
    }, { store });
    // A call in flight when the child dies may have run: it is reported, not repeated.
    const cut = runAsUser(user, () => callUserMcpTool(EVERYTHING.slow, { duration: 30, steps: 30 }), { store }).then(() => null, (e: unknown) => e);
    await until(() => mcp.stats.inUse === 1, 5000, 'the call to be in flight');
    const started = stdioCounters.started;
    process.kill(pid, 'SIGKILL');
    const error = await cut;
    expect(error).toBeInstanceOf(McpConnectionLostError);
    expect((error as McpConnectionLostError).code).toBe('ERR_MCP_CONNECTION_LOST');
    // Twenty requests at once after the death: one new child serves them all.
    const t0 = performance.now();
    const echoes = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      runAsUser(user, async () => textOf(await callUserMcpTool(EVERYTHING.echo, { message: `m${i}` })), { store })));
    const recoveryMs = performance.now() - t0;
    console.log(`stdio recovery after SIGKILL: 20 concurrent calls answered in ${recoveryMs.toFixed(0)} ms by one new child`);
    echoes.forEach((text, i) => expect(text).toBe(`Echo: m${i}`));
    expect(stdioCounters.started - started).toBe(1);
    const newPid = await runAsUser(user, async () => (await getUserMcpConnection())!.pid!, { store });
    expect(newPid).not.toBe(pid);
    expect(mcp.stats.died).toBeGreaterThanOrEqual(1);
    expect(recoveryMs).toBeLessThan(5000);
    expect(childProcesses().zombies).toEqual([]);
  });

  it('maxConnections bounds the children: the least recently used idle one is ended first, never one in use', async () => {
    const before = childProcesses().live.length;
    const { store, mcp } = newStore({ maxConnections: 2, acquireTimeout: 400 });
    const users = Array.from({ length: 5 }, () => randomUUID());
    for (const u of users) await runAsUser(u, () => configureUser({ mcpServerName: 'everything' }), { store });
    const envOf = (u: string) =>
      runAsUser(u, async () => JSON.parse(textOf(await callUserMcpTool(EVERYTHING.env))) as Record<string, string>, { store });
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, childProcesses().live.length - before)), 10);
    try {
      // User 0 holds a long call; users 1-3 come and go around it, evicting each other, never user 0.
      const busyPid = await runAsUser(users[0]!, async () => (await getUserMcpConnection())!.pid!, { store });
      // (A 60 s operation, aborted by the test: the pool must not depend on how fast this machine is.)
      const stop = new AbortController();
      const busy = runAsUser(users[0]!, () => callUserMcpTool(EVERYTHING.slow, { duration: 60, steps: 60 }, { signal: stop.signal }), { store })
        .then(() => 'completed', (e: unknown) => (stop.signal.aborted ? 'aborted' : e));
      await delay(100);
      for (const u of [users[1]!, users[2]!, users[3]!, users[1]!]) {
        expect((await envOf(u))['KUC_USER']).toBe(u);
        expect(processAlive(busyPid)).toBe(true);
      }
      expect(mcp.stats.evicted).toBe(3);
      expect(mcp.stats.inUse).toBe(1);
      stop.abort();
      expect(await busy).toBe('aborted');
      // Both slots busy: a new user waits acquireTimeout, then gets ERR_MCP_POOL_EXHAUSTED.
      const release = new AbortController();
      const holds = [users[0]!, users[1]!].map((u) =>
        runAsUser(u, () => callUserMcpTool(EVERYTHING.slow, { duration: 60, steps: 60 }, { signal: release.signal }), { store }).catch(() => 'aborted'));
      await until(() => mcp.stats.inUse === 2, 5000, 'both slots in use');
      const refused = await envOf(users[4]!).then(() => null, (e: unknown) => e);
      expect(refused).toBeInstanceOf(McpConnectError);
      expect((refused as McpConnectError).code).toBe('ERR_MCP_POOL_EXHAUSTED');
      release.abort();
      expect(await Promise.all(holds)).toEqual(['aborted', 'aborted']);
      // Once a slot is idle again, that user gets a child (evicting the idle one).
      expect((await envOf(users[4]!))['KUC_USER']).toBe(users[4]);
    } finally {
      clearInterval(sampler);
    }
    await mcp.settle();
    expect(most).toBeLessThanOrEqual(2);
    expect(mcp.stats.live).toBeLessThanOrEqual(2);
    await store.close();
    await mcp.settle();
    expect(childProcesses().live.length).toBe(before);
    expect(childProcesses().zombies).toEqual([]);
  });

  it('maxConnections without churn: a connection is never evicted before its first use (5 users, limit 2)', async () => {
    const before = childProcesses().live.length;
    const { store, mcp } = newStore({ maxConnections: 2, acquireTimeout: 60_000 });
    const users = Array.from({ length: 5 }, () => randomUUID());
    const started = stdioCounters.started;
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, childProcesses().live.length - before)), 10);
    // Each user, all at once: pick the server and make `calls` calls (the first creates the connection).
    const round = (calls: number) =>
      Promise.all(users.map((u) => runAsUser(u, async () => {
        await jitter();
        await configureUser({ mcpServerName: 'everything' });
        const answers: string[] = [];
        for (let i = 0; i < calls; i++) {
          answers.push(textOf(await callUserMcpTool(EVERYTHING.echo, { message: `${u}#${i}` })));
          await jitter();
        }
        return answers;
      }, { store })));
    try {
      // One call per user: each connection serves the call it was made for, so one start per user.
      const one = await round(1);
      console.log(`maxConnections 2, 5 users, 1 call each: ${mcp.stats.opened} opens for 5 calls`);
      expect(one).toEqual(users.map((u) => [`Echo: ${u}#0`]));
      const first = { opened: mcp.stats.opened, uses: mcp.stats.uses };
      expect(first).toEqual({ opened: 5, uses: 5 });
      expect(stdioCounters.started - started).toBe(5);
      // Two calls per user, with the users' connections from the first round evicted (switch away and back).
      for (const u of users) await runAsUser(u, () => configureUser({ mcpServerName: null }), { store });
      await mcp.settle();
      const two = await round(2);
      expect(two).toEqual(users.map((u) => [`Echo: ${u}#0`, `Echo: ${u}#1`]));
      const opened = mcp.stats.opened - first.opened;
      const uses = mcp.stats.uses - first.uses;
      console.log(`maxConnections 2, 5 users, 2 calls each: ${opened} opens for ${uses} uses`);
      expect(uses).toBe(10);
      // Every connection opened served at least one call before it was closed.
      expect(opened).toBeLessThanOrEqual(uses);
      expect(mcp.stats.evictedUnused).toBe(0);
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBeLessThanOrEqual(2);
    await store.close();
    await mcp.settle();
    expect(childProcesses().live.length).toBe(before);
  });

  it('a shared server runs one child for all users', async () => {
    const { store, mcp } = newStore();
    const started = stdioCounters.started;
    const users = Array.from({ length: 6 }, () => randomUUID());
    const pids = await Promise.all(users.map((u) => runAsUser(u, async () => {
      await configureUser({ mcpServerName: 'everything-shared' });
      expect(textOf(await callUserMcpTool(EVERYTHING.echo, { message: u }))).toBe(`Echo: ${u}`);
      return (await getUserMcpConnection())!.pid;
    }, { store })));
    expect(new Set(pids).size).toBe(1);
    expect(stdioCounters.started - started).toBe(1);
    // One user leaving keeps the shared child; the last one ends it.
    store.evict(users[0]!);
    await mcp.settle();
    expect(processAlive(pids[0]!)).toBe(true);
    await store.close();
    await mcp.settle();
    expect(processAlive(pids[0]!)).toBe(false);
  });

  it('a child that ignores SIGTERM is killed after killTimeout', async () => {
    const { store, mcp } = newStore({ killTimeout: 300 });
    const user = randomUUID();
    const pid = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'stubborn' });
      return (await getUserMcpConnection())!.pid!;
    }, { store });
    const t0 = performance.now();
    await store.close();
    await mcp.settle();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(processAlive(pid)).toBe(false);
    expect(childProcesses().zombies).toEqual([]);
  });

  it('a command that cannot start gives ERR_MCP_CONNECT_FAILED, then fails fast with ERR_MCP_BACKOFF', async () => {
    const { store, mcp } = newStore({ backoff: { initialDelay: 400, maxDelay: 400 } });
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: 'broken' });
      const first = await getUserMcpConnection().then(() => null, (e: unknown) => e);
      expect(first).toBeInstanceOf(McpConnectError);
      expect((first as McpConnectError).code).toBe('ERR_MCP_CONNECT_FAILED');
      expect((first as Error).message).toMatch(/"broken"/);
      const second = await getUserMcpConnection().then(() => null, (e: unknown) => e);
      expect(second).toBeInstanceOf(McpBackoffError);
      expect((second as McpBackoffError).retryAfterMs).toBeGreaterThan(0);
      await delay(450);
      const third = await getUserMcpConnection().then(() => null, (e: unknown) => e);
      expect((third as McpConnectError).code).toBe('ERR_MCP_CONNECT_FAILED');
    }, { store });
    expect(mcp.stats.connectFailures).toBe(2);
    expect(mcp.stats.live).toBe(0);
  });

  it('users pick names, never commands: an unknown name is refused', async () => {
    const { store } = newStore();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: '/bin/sh' });
      await expect(getUserMcpConnection()).rejects.toThrow(/not in the registry/);
    }, { store });
  });
});

function names(tools: readonly { name: string }[]): string[] {
  return tools.map((t) => t.name).sort();
}
