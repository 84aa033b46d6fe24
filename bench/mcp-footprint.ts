/**
 * What one live MCP connection costs this process (and, for stdio, the
 * machine): memory per connection from `process.memoryUsage()` deltas over N
 * connections, file descriptors from /proc/self/fd, and the RSS of each stdio
 * child from /proc/<pid>/status. Uses the MCP project's reference servers:
 * server-everything over Streamable HTTP (one child serving N sessions) and
 * server-memory over stdio (N children).
 *
 *   node --expose-gc --import tsx bench/mcp-footprint.ts [--http 100] [--stdio 10] [--port 43130]
 *
 * Prints a table and one JSON line. Numbers go into docs/agents-mcp.md.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { memoryServer } from '../examples/mcp-servers.js';
import { ContextStore, configureUser, runAsUser } from '../src/index.js';
import { createMcpClientFactory, getUserMcpConnection, getUserMcpTools, stdioCounters, type McpServerDefinition } from '../src/mcp.js';
import { startEverythingHttp } from '../test/support/mcp-reference.js';

const { values } = parseArgs({
  options: {
    http: { type: 'string', default: '100' },
    stdio: { type: 'string', default: '10' },
    port: { type: 'string', default: '43130' },
  },
});
const N_HTTP = Number(values.http);
const N_STDIO = Number(values.stdio);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function sample(): { rss: number; heap: number; external: number; fds: number } {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers, fds: readdirSync('/proc/self/fd').length };
}

function childRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function measure(name: string, n: number, target: McpServerDefinition) {
  await run(target, 2); // warm-up: module-level caches and compiled schemas are not per-connection costs
  await sleep(6000);
  return run(target, n, name);
}

async function run(target: McpServerDefinition, n: number, name = 'warm-up') {
  const mcp = createMcpClientFactory({ servers: { s: target }, stderr: () => undefined, connectTimeout: 30_000 });
  const store = new ContextStore({ resources: { mcpClient: mcp } });
  const users = Array.from({ length: n }, () => randomUUID());
  const before = sample();
  const pids: number[] = [];
  const t0 = performance.now();
  // Four at a time: what a burst of new users looks like, without starving this 2-core machine.
  for (let i = 0; i < n; i += 4) {
    await Promise.all(users.slice(i, i + 4).map((u) => runAsUser(u, async () => {
      await configureUser({ mcpServerName: 's' });
      await getUserMcpTools();
      const pid = (await getUserMcpConnection())!.pid;
      if (pid !== undefined) pids.push(pid);
    }, { store })));
  }
  const connectMs = (performance.now() - t0) / n;
  const during = sample();
  const childKb = pids.map(childRssKb);
  const t1 = performance.now();
  await store.close();
  await mcp.settle();
  const closeMs = performance.now() - t1;
  // Idle keep-alive sockets of fetch's pool close after ~4-5 s; wait them out.
  await sleep(6000);
  const after = sample();
  const per = (k: 'rss' | 'heap' | 'external' | 'fds') => (during[k] - before[k]) / n;
  return {
    name,
    n,
    perConnection: { rssKiB: per('rss') / 1024, heapKiB: per('heap') / 1024, externalKiB: per('external') / 1024, fds: per('fds') },
    childRssMiB: childKb.length === 0 ? null : childKb.reduce((a, b) => a + b, 0) / childKb.length / 1024,
    connectMsEach: connectMs,
    closeAllMs: closeMs,
    afterClose: { fdsLeft: after.fds - before.fds, heapKiBLeft: (after.heap - before.heap) / 1024 },
    processes: { started: stdioCounters.started, exited: stdioCounters.exited },
  };
}

const server = await startEverythingHttp(Number(values.port));
const dataDir = mkdtempSync(join(tmpdir(), 'kuc-mcp-footprint-'));
try {
  const http = await measure('Streamable HTTP (server-everything)', N_HTTP, { url: server.url });
  const stdio = await measure('stdio (server-memory)', N_STDIO, memoryServer(dataDir));
  for (const r of [http, stdio]) {
    console.log(
      `${r.name.padEnd(38)} n=${String(r.n).padEnd(4)} heap ${r.perConnection.heapKiB.toFixed(1)} KiB, rss ${r.perConnection.rssKiB.toFixed(1)} KiB, ` +
        `fds ${r.perConnection.fds.toFixed(2)} per connection; child rss ${r.childRssMiB?.toFixed(1) ?? '-'} MiB; ` +
        `connect ${r.connectMsEach.toFixed(0)} ms each; close all ${r.closeAllMs.toFixed(0)} ms; after close: ${r.afterClose.fdsLeft} fds, ${r.afterClose.heapKiBLeft.toFixed(0)} KiB heap left`,
    );
  }
  console.log(JSON.stringify({ http, stdio }));
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
