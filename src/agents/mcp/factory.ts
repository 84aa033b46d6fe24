/**
 * {@link createMcpClientFactory}: the store's `resources.mcpClient` spec for
 * real MCP clients over Streamable HTTP or stdio, with health checks,
 * back-off, a bound on live connections and opt-in sharing.
 *
 * ```ts
 * const mcp = createMcpClientFactory({
 *   servers: {
 *     memory: (config, userUuid) => ({ command: process.execPath, args: [memoryBin], env: { MEMORY_FILE_PATH: `/data/${userUuid}.jsonl` } }),
 *     search: { url: 'https://search.internal/mcp', shared: true },
 *   },
 *   maxConnections: 200,
 * });
 * const store = new ContextStore({ resources: { mcpClient: mcp } });
 * ```
 *
 * @module
 */
import { DEFAULT_DEPENDS_ON } from '../../context/fields.js';
import type { ConfigField, UserConfig } from '../../context/types.js';
import { rejectUnknownOptions } from '../../options.js';
import type { ResourceSpec } from '../../store/store.js';
import { UserMcpConnection } from './connection.js';
import { Backoff, type BackoffOptions } from './health.js';
import { openHttpLink, type OpenContext } from './http.js';
import { McpPool, type McpPoolStats } from './pool.js';
import { defaultStderrSink, openStdioLink, type McpStderrSink } from './stdio.js';
import { UserMcpServers } from './servers.js';
import { normaliseTarget, resolverOf, serverNamesOf, type McpServerDefinition, type McpServerTarget } from './targets.js';

/** Options of {@link createMcpClientFactory}. Give `servers` or `resolveServer`. */
export interface McpClientFactoryOptions {
  /**
   * The operator's registry: server name → target (`{ url }`, `{ command }`,
   * a URL string) or a function of the user's configuration returning one
   * (for a per-user environment or header). A user's `mcpServerName` picks
   * the entry (or their `mcpServerNames` pick several); a name not in it is
   * an error.
   * @default undefined (use resolveServer)
   */
  servers?: Readonly<Record<string, McpServerDefinition>>;
  /**
   * Maps a user's configuration to their MCP server, or `null` when they have
   * none. Resolve names through a registry you control: taking a URL or a
   * command from user-editable fields would let any user make the server
   * connect anywhere or run anything.
   * @default built from `servers`
   */
  resolveServer?: (config: UserConfig, userUuid: string) => McpServerTarget | string | URL | null | undefined;
  /**
   * How the client introduces itself to servers.
   * @default { name: 'koa-user-context', version: '1.0.0' }
   */
  clientInfo?: { name: string; version: string };
  /**
   * Milliseconds allowed for connecting (or starting the child) and the MCP
   * `initialize` handshake.
   * @default 10_000
   */
  connectTimeout?: number;
  /**
   * Milliseconds allowed for terminating an MCP session on close; the
   * transport is closed either way.
   * @default 5_000
   */
  closeTimeout?: number;
  /**
   * Milliseconds a stdio child gets to exit after SIGTERM before SIGKILL
   * (and again to be reaped after SIGKILL).
   * @default 2_000
   */
  killTimeout?: number;
  /**
   * Most live connections (MCP sessions plus stdio children) of this factory.
   * When reached, the least recently used idle one is closed first (never one
   * with a call in flight) and rebuilt when its user comes back.
   * @default Infinity
   */
  maxConnections?: number;
  /**
   * Milliseconds a request waits for a connection to become idle when all
   * `maxConnections` are in use, before failing with `McpPoolExhaustedError`.
   * @default 5_000
   */
  acquireTimeout?: number;
  /**
   * Back-off after a failed connect: requests for that server configuration
   * fail fast with `McpBackoffError` until the delay has passed.
   * @default { initialDelay: 250, maxDelay: 5_000, factor: 2 }
   */
  backoff?: BackoffOptions;
  /**
   * Where stdio children's stderr lines go, stamped with the user, server and pid.
   * @default writes `[mcp <server> user=<uuid> pid=<pid>] <line>` to process.stderr
   */
  stderr?: McpStderrSink;
  /**
   * Configuration fields the client is built from; changing one of them
   * closes the client once no request uses it.
   * @default DEFAULT_DEPENDS_ON.mcpClient (mcpServerName, mcpServerNames, mcpServerId, serverConfigs)
   */
  dependsOn?: readonly ConfigField[];
}

/** The resource spec, with the pool's counters. */
export interface McpClientFactory extends ResourceSpec<Promise<UserMcpConnection | UserMcpServers>> {
  /** Live connections, evictions, deaths and connect failures of this factory. */
  readonly stats: McpPoolStats;
  /** Waits until every connection this factory began closing has closed (children reaped). */
  settle(): Promise<void>;
}

const KNOWN = [
  'servers', 'resolveServer', 'clientInfo', 'connectTimeout', 'closeTimeout', 'killTimeout',
  'maxConnections', 'acquireTimeout', 'backoff', 'stderr', 'dependsOn',
] as const;

/**
 * The store's `resources.mcpClient` spec for real MCP clients:
 * `new ContextStore({ resources: { mcpClient: createMcpClientFactory({ servers }) } })`.
 * The resource value is a `Promise<UserMcpConnection>` that settles once
 * connected; read it with `getUserMcpConnection()`.
 */
export function createMcpClientFactory(options: McpClientFactoryOptions): McpClientFactory {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('createMcpClientFactory(options): options is required, e.g. { servers } or { resolveServer }');
  }
  rejectUnknownOptions(options, KNOWN, 'createMcpClientFactory()');
  const {
    servers,
    clientInfo = { name: 'koa-user-context', version: '1.0.0' },
    connectTimeout = 10_000,
    closeTimeout = 5_000,
    killTimeout = 2_000,
    maxConnections = Infinity,
    acquireTimeout = 5_000,
    backoff = {},
    stderr = defaultStderrSink,
    dependsOn = DEFAULT_DEPENDS_ON.mcpClient,
  } = options;
  if (servers !== undefined && options.resolveServer !== undefined) {
    throw new TypeError('createMcpClientFactory(): give options.servers or options.resolveServer, not both');
  }
  const resolveServer = options.resolveServer ?? (servers !== undefined ? resolverOf(servers) : undefined);
  if (typeof resolveServer !== 'function') {
    throw new TypeError('options.resolveServer must be a function (config, userUuid) => { url } | { command } | null, or give options.servers');
  }
  if (clientInfo === null || typeof clientInfo !== 'object' || typeof clientInfo.name !== 'string' || typeof clientInfo.version !== 'string') {
    throw new TypeError('options.clientInfo must be { name: string, version: string }');
  }
  for (const [name, value] of [['connectTimeout', connectTimeout], ['closeTimeout', closeTimeout], ['killTimeout', killTimeout], ['acquireTimeout', acquireTimeout]] as const) {
    if (!Number.isFinite(value) || value <= 0) throw new TypeError(`options.${name} must be a positive number of milliseconds`);
  }
  if (maxConnections !== Infinity && (!Number.isInteger(maxConnections) || maxConnections < 1)) {
    throw new TypeError('options.maxConnections must be a positive integer (or Infinity)');
  }
  if (typeof stderr !== 'function') throw new TypeError('options.stderr must be a function (line, { userUuid, server, pid }) => void');
  if (!Array.isArray(dependsOn)) throw new TypeError('options.dependsOn must be an array of field names');

  const pool = new McpPool({ max: maxConnections, acquireTimeout, backoff: new Backoff(backoff ?? {}) });

  /** A handle (not connected yet) on the server `config` resolves to, or `null`. */
  function handleOf(config: UserConfig, userUuid: string): UserMcpConnection | null {
    const target = normaliseTarget(resolveServer!(config, userUuid), config);
    if (target === null) return null;
    const owner = target.shared ? '(shared)' : userUuid;
    const ctx: OpenContext = { userUuid: owner, clientInfo, connectTimeout, closeTimeout };
    const entry = pool.attach(`${target.shared ? 'shared' : `user:${userUuid}`}|${target.key}`, target.name, () =>
      target.kind === 'http' ? openHttpLink(target, ctx) : openStdioLink(target, { ...ctx, killTimeout, stderr }),
    );
    return new UserMcpConnection(pool, entry, target, userUuid);
  }

  function createMcpClient(config: UserConfig, userUuid: string): Promise<UserMcpConnection | UserMcpServers> | null {
    const names = serverNamesOf(config);
    if (names === null) {
      const connection = handleOf(config, userUuid);
      if (connection === null) return null;
      return connection.connect().then(
        () => connection,
        async (error: unknown) => {
          await connection.close();
          throw error;
        },
      );
    }
    // Several servers: each is resolved as if it were the user's one mcpServerName.
    const connections = names.map((name) => handleOf({ ...config, mcpServerName: name }, userUuid)).filter((c) => c !== null);
    if (connections.length === 0) return null;
    return Promise.allSettled(connections.map((c) => c.connect())).then(async (settled) => {
      const failed = settled.find((s) => s.status === 'rejected');
      // One server down leaves the others usable (it reconnects on its next use); all down fails like one.
      if (failed !== undefined && settled.every((s) => s.status === 'rejected')) {
        await Promise.all(connections.map((c) => c.close()));
        throw failed.reason;
      }
      return new UserMcpServers(userUuid, connections);
    });
  }

  const spec: ResourceSpec<Promise<UserMcpConnection | UserMcpServers>> = {
    dependsOn,
    create: createMcpClient,
    dispose: async function disposeMcpClient(value: unknown) {
      if (value instanceof UserMcpConnection || value instanceof UserMcpServers) await value.close();
    },
  };
  // Not enumerable: the store takes the spec's own keys (create, dispose, dependsOn) only.
  return Object.defineProperties(spec, {
    stats: { get: () => pool.stats },
    settle: { value: () => pool.settle() },
  }) as McpClientFactory;
}
