/**
 * Request-scoped helpers: the current user's MCP tools and tool calls. They
 * work with a {@link UserMcpConnection} from `createMcpClientFactory()` (cached
 * catalog, health checks, rebuilds) and with any other client that has the
 * SDK `Client` surface (`listTools`, `callTool`) — whatever its transport —
 * handed over with `setUserMcpClient()` or built by your own resource spec.
 * What such a client answers is checked (`answers.ts`): a look-alike that
 * answers something else fails with `McpInvalidAnswerError` naming the method.
 *
 * @module
 */
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { getUserMcpClient } from '../../api/helpers.js';
import { getRequestSignal } from '../../api/request-signal.js';
import { McpConnectError } from '../../errors.js';
import { toolResult } from './answers.js';
import { fetchTools, UserMcpConnection, type McpCallOptions } from './connection.js';
import { connectionsOf } from './servers.js';

/** The part of the SDK `Client` the helpers use. */
export interface McpClientLike {
  listTools(params?: { cursor?: string }): Promise<{ tools: Tool[]; nextCursor?: string | undefined }>;
  callTool(
    params: { name: string; arguments?: Record<string, unknown> },
    resultSchema?: undefined,
    options?: { signal?: AbortSignal; timeout?: number },
  ): Promise<unknown>;
}

/** Whether `value` has the SDK `Client` surface the helpers need. */
export function isMcpClientLike(value: unknown): value is McpClientLike {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as Partial<McpClientLike>).listTools === 'function' &&
    typeof (value as Partial<McpClientLike>).callTool === 'function'
  );
}

/**
 * The current (or given) user's MCP connection from `createMcpClientFactory()`,
 * connected; `null` when their configuration names no MCP server. With
 * several servers (`mcpServerNames`), the first one; see
 * {@link getUserMcpConnections}. Rejects with an `McpConnectError` (or a
 * subclass) when the server cannot be reached; the failure is not cached.
 * For clients of another kind use `getUserMcpClient()`.
 */
export async function getUserMcpConnection(userUuid?: string): Promise<UserMcpConnection | null> {
  return (await getUserMcpConnections(userUuid))[0] ?? null;
}

/**
 * All MCP connections of the current (or given) user, in the order of their
 * `mcpServerNames` (or their one `mcpServerName`); `[]` without any.
 */
export async function getUserMcpConnections(userUuid?: string): Promise<readonly UserMcpConnection[]> {
  const value: unknown = await getUserMcpClient(userUuid);
  if (value == null) return [];
  const connections = connectionsOf(value);
  if (connections === null) {
    throw new TypeError(
      "The store's mcpClient is not a UserMcpConnection: configure resources.mcpClient = createMcpClientFactory(…), " +
        'or read your own client with getUserMcpClient() (getUserMcpTools() and callUserMcpTool() accept any SDK Client).',
    );
  }
  return connections;
}

/** The current user's client, whichever kind (the first of several servers); `null` without one. */
async function currentClient(userUuid?: string): Promise<UserMcpConnection | McpClientLike | null> {
  const value: unknown = await getUserMcpClient(userUuid);
  if (value == null) return null;
  const connections = connectionsOf(value);
  if (connections !== null) return connections[0] ?? null;
  if (isMcpClientLike(value)) return value;
  throw new TypeError(
    "The store's mcpClient has no listTools()/callTool(): hand over an SDK Client (or anything with its surface), " +
      'or configure resources.mcpClient = createMcpClientFactory(…).',
  );
}

/**
 * The tools of the current (or given) user's MCP server (the first of
 * several; `getUserTools()` of `koa-user-context/ai` has them all); `[]` without one.
 * Cached per connection for `UserMcpConnection`s; other clients are asked
 * every time (all pages).
 */
export async function getUserMcpTools(userUuid?: string): Promise<readonly Tool[]> {
  const client = await currentClient(userUuid);
  if (client === null) return [];
  return client instanceof UserMcpConnection ? client.listTools() : fetchTools(client);
}

/** Calls a tool on the current user's MCP server, aborted with the request by default. */
export async function callUserMcpTool(
  name: string,
  args: Record<string, unknown> = {},
  options: McpCallOptions = {},
): Promise<CallToolResult> {
  const client = await currentClient();
  if (client === null) {
    throw new McpConnectError('The current user has no MCP server configured (mcpServerName / mcpServerId is null): configure one first.');
  }
  if (client instanceof UserMcpConnection) return client.callTool(name, args, options);
  const signal = options.signal ?? getRequestSignal();
  const result = await client.callTool({ name, arguments: args }, undefined, {
    ...(signal !== undefined ? { signal } : {}),
    ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
  });
  return toolResult(result, name);
}
