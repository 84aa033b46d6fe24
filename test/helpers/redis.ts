/**
 * Real Redis for the tests: the server at REDIS_URL (default
 * redis://127.0.0.1:6379), and throw-away redis-server processes on other
 * ports for the failure tests. In CI a missing Redis fails the run; outside
 * CI the Redis tests are skipped with a message saying how to run them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env['REDIS_URL'] || 'redis://127.0.0.1:6379';
export const IN_CI = process.env['CI'] === 'true' || process.env['CI'] === '1';

/** A key prefix unique to this test run, so runs never collide. */
export function runPrefix(label: string): string {
  return `kuc:test:${label}:${randomUUID()}:`;
}

async function ping(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * Whether Redis is reachable. In CI, throws instead of returning false: a
 * Redis test must fail, not skip, when Redis is missing there.
 */
export async function requireRedis(what: string): Promise<boolean> {
  if (await ping(REDIS_URL)) return true;
  if (IN_CI) throw new Error(`CI: ${what} need Redis at ${REDIS_URL}, which is not reachable. .ci/run starts one; check it.`);
  console.warn(
    `\n[skip] ${what}: no Redis at ${REDIS_URL}. Start one (redis-server --port 6379) or set REDIS_URL to run them.\n`,
  );
  return false;
}

/** Whether a redis-server binary can be started (for the failure tests). */
export function requireRedisServerBinary(what: string): boolean {
  const ok = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (ok) return true;
  if (IN_CI) throw new Error(`CI: ${what} need the redis-server binary (apt-get install redis-server).`);
  console.warn(`\n[skip] ${what}: no redis-server binary on PATH (apt-get install redis-server to run them).\n`);
  return false;
}

/** A plain client for inspecting Redis from the test. */
export function adminClient(url = REDIS_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  return client;
}

/**
 * A free TCP port on 127.0.0.1: any (0), or the first free one from
 * `from` upwards (tests that start several servers keep to a known range).
 */
export async function freePort(from = 0): Promise<number> {
  if (from > 0) {
    for (let port = from + Math.floor(Math.random() * 500); port < 65_000; port++) {
      if ((await freePort(-port)) > 0) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error) => (from < 0 ? resolve(0) : reject(error)));
    server.listen(from < 0 ? -from : 0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Options of {@link OwnRedisServer.start}. */
export interface OwnRedisServerOptions {
  /**
   * Persist every write (AOF, fsync always), so a restart keeps the data.
   * `false`: nothing on disk, a restart starts empty.
   * @default true
   */
  persist?: boolean;
  /**
   * Extra redis-server arguments, e.g. `['--enable-debug-command', 'local']`.
   * @default []
   */
  args?: readonly string[];
  /**
   * Port to listen on.
   * @default a free port
   */
  port?: number;
}

/** A redis-server owned by a test, on its own port; by default persisting every write (AOF, fsync always). */
export class OwnRedisServer {
  readonly port: number;
  readonly url: string;
  /** Data directory (AOF, cluster config). */
  readonly dir: string;
  readonly #args: readonly string[];
  #proc: ChildProcess | undefined;

  private constructor(port: number, options: OwnRedisServerOptions) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.dir = mkdtempSync(join(tmpdir(), 'kuc-redis-'));
    const persistence = options.persist === false ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always'];
    this.#args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', this.dir, ...(options.args ?? [])];
  }

  static async start(options: OwnRedisServerOptions = {}): Promise<OwnRedisServer> {
    const server = new OwnRedisServer(options.port ?? (await freePort()), options);
    try {
      await server.restart();
    } catch (error) {
      await server.destroy(); // no process or data directory left behind
      throw error;
    }
    return server;
  }

  /** Starts (again) on the same port and data directory. */
  async restart(): Promise<void> {
    this.#proc = spawn('redis-server', [...this.#args], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (await ping(this.url)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`redis-server on port ${this.port} did not start`);
  }

  /** Kills the server abruptly (SIGKILL) and waits for it to be gone. */
  async kill(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered or relayed, no error. */
  pause(): void {
    this.#signal('SIGSTOP');
  }

  /** Lets a paused server run again (SIGCONT). */
  resume(): void {
    this.#signal('SIGCONT');
  }

  #signal(signal: NodeJS.Signals): void {
    const proc = this.#proc;
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
  }

  async destroy(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Deletes every key of a prefix (cleanup after a test file). */
export async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Ports for this repo's own throw-away servers (kept to one range on shared machines). */
export const OWN_PORTS_FROM = Number(process.env['KUC_TEST_PORTS_FROM'] ?? 44_000);

/**
 * A local Redis Cluster of `masters` redis-server processes (no replicas,
 * nothing on disk), created with `redis-cli --cluster create`.
 */
export class OwnRedisCluster {
  readonly nodes: OwnRedisServer[];

  private constructor(nodes: OwnRedisServer[]) {
    this.nodes = nodes;
  }

  static async start(masters = 3, args: readonly string[] = []): Promise<OwnRedisCluster> {
    const nodes: OwnRedisServer[] = [];
    try {
      for (let i = 0; i < masters; i++) {
        // The cluster bus port (port + 500) stays in the same range as the port.
        let port = await freePort(OWN_PORTS_FROM);
        while (port + 500 > OWN_PORTS_FROM + 999 || (await freePort(-(port + 500))) === 0) port = await freePort(OWN_PORTS_FROM);
        nodes.push(await OwnRedisServer.start({
          persist: false,
          port,
          args: ['--cluster-enabled', 'yes', '--cluster-port', String(port + 500), '--cluster-config-file', 'nodes.conf',
            '--cluster-node-timeout', '2000', ...args],
        }));
      }
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
      const cluster = new OwnRedisCluster(nodes);
      await cluster.waitOk();
      return cluster;
    } catch (error) {
      await Promise.all(nodes.map((n) => n.destroy()));
      throw error;
    }
  }

  /** `[{ host, port }]` for `new Cluster(...)`. */
  get startupNodes(): { host: string; port: number }[] {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  /** Waits until every node reports `cluster_state:ok`. */
  async waitOk(timeout = 20_000): Promise<void> {
    const until = Date.now() + timeout;
    for (;;) {
      const states = await Promise.all(this.nodes.map(async (n) => {
        const c = adminClient(n.url);
        try {
          return String(await c.call('CLUSTER', 'INFO')).includes('cluster_state:ok');
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      }));
      if (states.every(Boolean)) return;
      if (Date.now() > until) throw new Error('the local Redis Cluster did not reach cluster_state:ok');
      await sleep(100);
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.destroy()));
  }
}

/**
 * A Sentinel-managed pair: a primary, a replica and one sentinel (quorum
 * 1), all redis-server processes on ports from {@link OWN_PORTS_FROM}.
 * Connect with `new Redis({ sentinels: group.sentinels, name: group.name })`.
 */
export class OwnSentinelGroup {
  readonly name = 'kucprimary';
  readonly servers: OwnRedisServer[];
  readonly sentinelPort: number;
  readonly #dir: string;
  #sentinel: ChildProcess | undefined;

  private constructor(servers: OwnRedisServer[], sentinelPort: number, dir: string) {
    this.servers = servers;
    this.sentinelPort = sentinelPort;
    this.#dir = dir;
  }

  static async start(): Promise<OwnSentinelGroup> {
    const primary = await OwnRedisServer.start({ persist: false, port: await freePort(OWN_PORTS_FROM) });
    const replica = await OwnRedisServer.start({
      persist: false, port: await freePort(OWN_PORTS_FROM), args: ['--replicaof', '127.0.0.1', String(primary.port)],
    });
    const dir = mkdtempSync(join(tmpdir(), 'kuc-sentinel-'));
    const group = new OwnSentinelGroup([primary, replica], await freePort(OWN_PORTS_FROM), dir);
    writeFileSync(join(dir, 'sentinel.conf'), [
      `port ${group.sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${group.name} 127.0.0.1 ${primary.port} 1`,
      `sentinel down-after-milliseconds ${group.name} 1000`,
      `sentinel failover-timeout ${group.name} 5000`,
      '',
    ].join('\n'));
    group.#sentinel = spawn('redis-server', [join(dir, 'sentinel.conf'), '--sentinel'], { stdio: 'ignore' });
    const url = `redis://127.0.0.1:${group.sentinelPort}`;
    for (let i = 0; i < 100 && !(await ping(url)); i++) await sleep(50);
    await group.waitReplicated();
    return group;
  }

  get sentinels(): { host: string; port: number }[] {
    return [{ host: '127.0.0.1', port: this.sentinelPort }];
  }

  /** The port of the primary the sentinel announces now. */
  async primaryPort(): Promise<number> {
    const c = adminClient(`redis://127.0.0.1:${this.sentinelPort}`);
    try {
      const [, port] = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)) as [string, string];
      return Number(port);
    } finally {
      c.disconnect();
    }
  }

  /** Waits until the primary has a replica online and the sentinel knows it. */
  async waitReplicated(timeout = 20_000): Promise<void> {
    const until = Date.now() + timeout;
    for (;;) {
      const port = await this.primaryPort().catch(() => 0);
      const c = adminClient(`redis://127.0.0.1:${port}`);
      const info = await c.info('replication').catch(() => '');
      c.disconnect();
      const s = adminClient(`redis://127.0.0.1:${this.sentinelPort}`);
      const replicas = await s.call('SENTINEL', 'REPLICAS', this.name).catch(() => []) as unknown[];
      s.disconnect();
      if (/connected_slaves:[1-9]/.test(info) && /state=online/.test(info) && replicas.length > 0) return;
      if (Date.now() > until) throw new Error('the Sentinel group did not reach a replicated state');
      await sleep(100);
    }
  }

  /** The server process listening on `port`. */
  server(port: number): OwnRedisServer {
    const s = this.servers.find((x) => x.port === port);
    if (s === undefined) throw new Error(`no server of the group on port ${port}`);
    return s;
  }

  async destroy(): Promise<void> {
    const proc = this.#sentinel;
    if (proc !== undefined && proc.exitCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGKILL');
      await exited;
    }
    await Promise.all(this.servers.map((s) => s.destroy()));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
