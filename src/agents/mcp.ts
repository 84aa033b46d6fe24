/**
 * Per-user MCP clients: the real `@modelcontextprotocol/sdk` `Client` over its
 * Streamable HTTP transport, built lazily from the user's configuration
 * (`mcpServerName`, `mcpServerId`, `serverConfigs`) by the store's
 * `resources.mcpClient` spec. The client therefore follows the store's
 * lifetime rules: one per configuration, shared by every request on it,
 * closed (MCP session terminated) once the user switches server, the context
 * is evicted or the store closes, never while a request still uses it.
 *
 * The tool catalog (`listTools`) is cached on the connection, so it is cached
 * per user *and* per server: switching server builds a new connection with an
 * empty catalog. A `notifications/tools/list_changed` from the server clears it.
 *
 * ```ts
 * const store = new ContextStore({
 *   resources: { mcpClient: createMcpClientFactory({ resolveServer: (cfg) => registry.get(cfg.mcpServerName) }) },
 * });
 * // in a request:
 * const tools = await getUserMcpTools();
 * ```
 *
 * Import it from `koa-user-context/mcp` (the SDK is an optional peer dependency).
 *
 * @module
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ConfigField, UserConfig } from '../context/types.js';
import { DEFAULT_DEPENDS_ON } from '../context/fields.js';
import { McpConnectError } from '../errors.js';
import { getUserMcpClient } from '../api/helpers.js';
import { getRequestSignal } from '../api/request-signal.js';
import type { ResourceSpec } from '../store/store.js';

/** Where a user's MCP server is. A bare string or URL is the endpoint. */
export interface McpServerTarget {
  /** Streamable HTTP endpoint, e.g. `https://mcp.example.com/mcp`. */
  url: string | URL;
  /**
   * Name shown in errors and by `connection.serverName`.
   * @default config.mcpServerName, else the URL's host
   */
  name?: string;
  /**
   * Extra HTTP headers sent with every MCP request (e.g. a per-user API key).
   * @default {}
   */
  headers?: Readonly<Record<string, string>>;
}

/** Options of {@link createMcpClientFactory}. */
export interface McpClientFactoryOptions {
  /**
   * Maps a user's configuration to their MCP server, or `null` when they have
   * none. Required: resolve names through a registry you control. Taking a URL
   * straight from user-editable fields would let any user make the server
   * connect anywhere (SSRF).
   */
  resolveServer: (config: UserConfig, userUuid: string) => McpServerTarget | string | URL | null | undefined;
  /**
   * How the client introduces itself to servers.
   * @default { name: 'koa-user-context', version: '1.0.0' }
   */
  clientInfo?: { name: string; version: string };
  /**
   * Milliseconds allowed for connecting and the MCP `initialize` handshake.
   * @default 10_000
   */
  connectTimeout?: number;
  /**
   * Milliseconds allowed for terminating the MCP session on close; the
   * transport is closed either way.
   * @default 5_000
   */
  closeTimeout?: number;
  /**
   * Configuration fields the client is built from; changing one of them
   * closes the client once no request uses it.
   * @default DEFAULT_DEPENDS_ON.mcpClient
   */
  dependsOn?: readonly ConfigField[];
}

/** Options of one tool call. */
export interface McpCallOptions {
  /**
   * Aborts the call.
   * @default the current request's signal (`getRequestSignal()`)
   */
  signal?: AbortSignal;
  /**
   * Milliseconds before the call times out.
   * @default the SDK's default (60 s)
   */
  timeout?: number;
}

/**
 * One user's live connection to one MCP server: the SDK `Client`, its tool
 * catalog (cached) and its lifetime.
 */
export class UserMcpConnection {
  /** The SDK client, for anything this class does not wrap. */
  readonly client: Client;
  readonly serverName: string;
  readonly url: URL;
  readonly userUuid: string;
  readonly #transport: StreamableHTTPClientTransport;
  readonly #closeTimeout: number;
  #tools: Promise<readonly Tool[]> | undefined;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createMcpClientFactory}. */
  constructor(
    client: Client,
    transport: StreamableHTTPClientTransport,
    info: { serverName: string; url: URL; userUuid: string; closeTimeout: number },
  ) {
    this.client = client;
    this.#transport = transport;
    this.serverName = info.serverName;
    this.url = info.url;
    this.userUuid = info.userUuid;
    this.#closeTimeout = info.closeTimeout;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The MCP session id the server gave this connection. */
  get sessionId(): string | undefined {
    return this.#transport.sessionId;
  }

  /**
   * The server's tools, fetched once (all pages) and cached until the server
   * says the list changed or {@link invalidateTools} is called. Concurrent
   * callers share one fetch; a failed fetch is not cached.
   */
  listTools(): Promise<readonly Tool[]> {
    if (this.#closing !== undefined) return Promise.reject(this.#closedError());
    if (this.#tools === undefined) {
      const tools = this.#fetchTools();
      this.#tools = tools;
      tools.catch(() => {
        if (this.#tools === tools) this.#tools = undefined;
      });
    }
    return this.#tools;
  }

  /** Drops the cached catalog; the next `listTools()` asks the server again. */
  invalidateTools(): void {
    this.#tools = undefined;
  }

  /** Calls a tool of this server. */
  async callTool(name: string, args: Record<string, unknown> = {}, options: McpCallOptions = {}): Promise<CallToolResult> {
    if (this.#closing !== undefined) throw this.#closedError();
    const signal = options.signal ?? getRequestSignal();
    const result = await this.client.callTool({ name, arguments: args }, undefined, {
      ...(signal !== undefined ? { signal } : {}),
      ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
    });
    return result as CallToolResult;
  }

  /**
   * Terminates the MCP session (HTTP DELETE, so the server frees it at once)
   * and closes the transport. Idempotent. The store calls it; apps do not.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#tools = undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#transport.terminateSession().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#closeTimeout);
          timer.unref();
        }),
      ]);
    } finally {
      clearTimeout(timer);
      await this.client.close();
    }
  }

  async #fetchTools(): Promise<readonly Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.client.listTools(cursor === undefined ? undefined : { cursor });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return Object.freeze(tools);
  }

  #closedError(): Error {
    return new Error(
      `The MCP connection of user ${this.userUuid} to "${this.serverName}" is closed: the user switched server ` +
        'or the context was evicted. Get the current one with getUserMcpConnection().',
    );
  }
}

/**
 * The store's `resources.mcpClient` spec for real MCP clients:
 * `new ContextStore({ resources: { mcpClient: createMcpClientFactory({ resolveServer }) } })`.
 * The resource value is a `Promise<UserMcpConnection>` (connecting is
 * asynchronous); read it with {@link getUserMcpConnection}.
 */
export function createMcpClientFactory(options: McpClientFactoryOptions): ResourceSpec<Promise<UserMcpConnection>> {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('createMcpClientFactory(options): options is required, e.g. { resolveServer }');
  }
  const {
    resolveServer,
    clientInfo = { name: 'koa-user-context', version: '1.0.0' },
    connectTimeout = 10_000,
    closeTimeout = 5_000,
    dependsOn = DEFAULT_DEPENDS_ON.mcpClient,
  } = options;
  if (typeof resolveServer !== 'function') {
    throw new TypeError('options.resolveServer must be a function (config, userUuid) => { url } | null');
  }
  if (clientInfo === null || typeof clientInfo !== 'object' || typeof clientInfo.name !== 'string' || typeof clientInfo.version !== 'string') {
    throw new TypeError('options.clientInfo must be { name: string, version: string }');
  }
  if (!Number.isFinite(connectTimeout) || connectTimeout <= 0) {
    throw new TypeError('options.connectTimeout must be a positive number of milliseconds');
  }
  if (!Number.isFinite(closeTimeout) || closeTimeout <= 0) {
    throw new TypeError('options.closeTimeout must be a positive number of milliseconds');
  }
  if (!Array.isArray(dependsOn)) throw new TypeError('options.dependsOn must be an array of field names');

  function createMcpClient(config: UserConfig, userUuid: string): Promise<UserMcpConnection> | null {
    const target = normaliseTarget(resolveServer(config, userUuid), config);
    if (target === null) return null;
    return connect(target, userUuid);
  }

  async function connect(target: Required<McpServerTarget> & { url: URL }, userUuid: string): Promise<UserMcpConnection> {
    let connection: UserMcpConnection | undefined;
    const client = new Client(clientInfo, {
      listChanged: { tools: { autoRefresh: false, debounceMs: 0, onChanged: () => connection?.invalidateTools() } },
    });
    const transport = new StreamableHTTPClientTransport(target.url, {
      requestInit: { headers: { ...target.headers } },
      // A dropped SSE stream is not worth retrying for long: requests reconnect on their own.
      reconnectionOptions: { maxRetries: 2, initialReconnectionDelay: 500, maxReconnectionDelay: 2000, reconnectionDelayGrowFactor: 2 },
    });
    try {
      await client.connect(transport, { timeout: connectTimeout });
    } catch (cause) {
      await client.close().catch(() => undefined);
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new McpConnectError(
        `Could not connect user ${userUuid} to MCP server "${target.name}" at ${target.url.href}: ${reason}. ` +
          'Check that the server is running and speaks Streamable HTTP.',
        { cause },
      );
    }
    connection = new UserMcpConnection(client, transport, {
      serverName: target.name,
      url: target.url,
      userUuid,
      closeTimeout,
    });
    return connection;
  }

  return {
    dependsOn,
    create: createMcpClient,
    dispose: async function disposeMcpClient(value: unknown) {
      if (value instanceof UserMcpConnection) await value.close();
    },
  };
}

function normaliseTarget(
  found: McpServerTarget | string | URL | null | undefined,
  config: UserConfig,
): (Required<McpServerTarget> & { url: URL }) | null {
  if (found == null) return null;
  const target: McpServerTarget = typeof found === 'string' || found instanceof URL ? { url: found } : found;
  let url: URL;
  try {
    url = new URL(target.url);
  } catch (cause) {
    throw new TypeError(`resolveServer() returned an invalid URL: ${String(target.url)}`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`resolveServer() must return an http(s) URL, got ${url.protocol}`);
  }
  return { url, name: target.name ?? config.mcpServerName ?? url.host, headers: target.headers ?? {} };
}

/**
 * The current (or given) user's MCP connection, connected; `null` when their
 * configuration names no MCP server. Rejects with `McpConnectError` when the
 * server cannot be reached (the failure is not cached: the next call retries).
 */
export async function getUserMcpConnection(userUuid?: string): Promise<UserMcpConnection | null> {
  const value: unknown = await getUserMcpClient(userUuid);
  if (value == null) return null;
  if (!(value instanceof UserMcpConnection)) {
    throw new TypeError(
      'The store\'s mcpClient is not a UserMcpConnection: configure it with resources.mcpClient = createMcpClientFactory(…).',
    );
  }
  return value;
}

/** The tools of the current (or given) user's MCP server (cached); `[]` without a server. */
export async function getUserMcpTools(userUuid?: string): Promise<readonly Tool[]> {
  const connection = await getUserMcpConnection(userUuid);
  return connection === null ? [] : connection.listTools();
}

/** Calls a tool on the current user's MCP server, aborted with the request by default. */
export async function callUserMcpTool(
  name: string,
  args: Record<string, unknown> = {},
  options: McpCallOptions = {},
): Promise<CallToolResult> {
  const connection = await getUserMcpConnection();
  if (connection === null) {
    throw new McpConnectError('The current user has no MCP server configured (mcpServerName / mcpServerId is null).');
  }
  return connection.callTool(name, args, options);
}

export type { CallToolResult, Tool };
