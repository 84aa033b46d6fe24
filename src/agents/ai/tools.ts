/**
 * {@link getUserTools}: the AI SDK tool set of the current user's MCP
 * servers, for `generateText` / `streamText` loops. Each tool runs on *that
 * user's* connection; the set is cached per MCP configuration and rebuilt
 * when it changes or a server's tool list does.
 *
 * The conversion follows `@ai-sdk/mcp` (`dynamicTool`, the server's JSON
 * Schema with `properties` defaulted to `{}`, an `isError` result handed to
 * the model rather than thrown) but runs on the library's pooled, health-
 * checked `UserMcpConnection`s instead of a second MCP client per user, and
 * adds what a multi-user server needs: server-prefixed names, the operator's
 * tool policy, the request's abort signal (the MCP SDK then tells the server
 * with `notifications/cancelled`), failures and time-outs as tool errors, and
 * a bound on the result's size.
 *
 * This module loads `ai` but not the MCP SDK: it recognises the connections
 * by their brand.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { dynamicTool, jsonSchema, type ToolSet } from 'ai';
import { currentUserUuid, getUserMcpClient } from '../../api/helpers.js';
import { getRequestSignal } from '../../api/request-signal.js';
import { rejectUnknownOptions } from '../../options.js';
import type { UserMcpConnection } from '../mcp/connection.js';
import { connectionsOf } from '../mcp/servers.js';
import { countToolCall } from '../../usage/current.js';

/** Options of {@link getUserTools}. */
export interface UserToolsOptions {
  /**
   * Most characters of one tool result handed to the model. A longer result
   * is cut and ends with `[truncated: …]`, saying how much was left out.
   * @default 20_000
   */
  maxResultChars?: number;
  /**
   * Milliseconds before a tool call times out; the model then gets a tool
   * error saying so (the loop goes on).
   * @default 60_000
   */
  timeout?: number;
}

/** The MCP tool behind a name of the set, for logs and per-server accounting. */
export interface UserToolOrigin {
  /** The server's name (`connection.serverName`). */
  readonly server: string;
  /** The tool's name on that server. */
  readonly tool: string;
}

/** What the cache keeps per MCP configuration (the user's `mcpClient` value). */
interface Cached {
  /** The catalogs the sets below were built from: one per connection, compared by identity. */
  catalogs: readonly (readonly unknown[])[];
  /** One set per options key. */
  sets: Map<string, ToolSet>;
}

const cache = new WeakMap<object, Cached>();
const origins = new WeakMap<ToolSet, ReadonlyMap<string, UserToolOrigin>>();
const KNOWN = ['maxResultChars', 'timeout'] as const;
/** What providers accept as a tool name (OpenAI, Anthropic, Google, Bedrock). */
const NAME_LIMIT = 64;

/**
 * The AI SDK tools of the current user's MCP servers (their `mcpServerName`,
 * or every one of their `mcpServerNames`), named `<prefix>__<tool>` with each
 * server's `toolPrefix` (default: its name), without the tools the operator's
 * policy hides; `{}` when the user has no MCP server. Pass it as `tools` to
 * `generateText` / `streamText` with a `stopWhen` step limit.
 *
 * Cached per MCP configuration and options: the same object until the user's
 * configuration changes (new connections) or a server's catalog does (its
 * `notifications/tools/list_changed`, or a rebuilt connection). A server that
 * cannot list its tools now is left out of this call's set (not cached).
 *
 * Each `execute` calls the tool on this user's connection with the AI SDK's
 * abort signal joined to the request's (a client disconnect cancels the call
 * and the server is told); a failure or time-out is thrown as a tool error,
 * which the AI SDK hands to the model; a result with `isError` goes to the
 * model as an error text. Executing a tool inside another user's scope is
 * refused (a tool error), so a set kept by mistake across users cannot act
 * for the wrong one.
 */
export async function getUserTools(options: UserToolsOptions = {}): Promise<ToolSet> {
  rejectUnknownOptions(options, KNOWN, 'getUserTools()');
  const { maxResultChars = 20_000, timeout = 60_000 } = options;
  if (!Number.isInteger(maxResultChars) || maxResultChars < 100) throw new TypeError('options.maxResultChars must be an integer ≥ 100');
  if (!Number.isFinite(timeout) || timeout <= 0) throw new TypeError('options.timeout must be a positive number of milliseconds');
  const value: unknown = await getUserMcpClient();
  if (value == null) return {};
  const connections = connectionsOf(value);
  if (connections === null) {
    throw new TypeError(
      "getUserTools() needs the store's mcpClient from createMcpClientFactory() (koa-user-context/mcp); " +
        'for a client of your own, build the tools from its listTools() with the AI SDK.',
    );
  }
  const settled = await Promise.allSettled(connections.map((c) => c.listTools()));
  const catalogs = settled.map((s) => (s.status === 'fulfilled' ? s.value : null));
  const complete = catalogs.every((c) => c !== null);
  const key = `${maxResultChars}|${timeout}`;
  let cached = cache.get(value as object);
  if (cached !== undefined && complete && sameCatalogs(cached.catalogs, catalogs)) {
    const set = cached.sets.get(key);
    if (set !== undefined) return set;
  } else if (complete) {
    cached = { catalogs: catalogs as readonly (readonly unknown[])[], sets: new Map() };
    cache.set(value as object, cached);
  } else {
    cached = undefined;
  }
  const set = buildSet(connections, catalogs, { maxResultChars, timeout });
  cached?.sets.set(key, set);
  return set;
}

/** The server and MCP tool behind `name` in a set from {@link getUserTools}. */
export function userToolOrigin(tools: ToolSet, name: string): UserToolOrigin | undefined {
  return origins.get(tools)?.get(name);
}

function sameCatalogs(a: readonly (readonly unknown[])[], b: readonly (readonly unknown[] | null)[]): boolean {
  return a.length === b.length && a.every((catalog, i) => catalog === b[i]);
}

type McpTool = Awaited<ReturnType<UserMcpConnection['listTools']>>[number];

function buildSet(
  connections: readonly UserMcpConnection[],
  catalogs: readonly (readonly McpTool[] | null)[],
  limits: { maxResultChars: number; timeout: number },
): ToolSet {
  const set: ToolSet = {};
  const origin = new Map<string, UserToolOrigin>();
  const prefixes = new Map<string, string>();
  connections.forEach((connection, i) => {
    let prefix = sanitise(connection.toolPrefix);
    // Two servers whose prefixes coincide (after sanitising) keep apart by a stable hash of their names.
    const owner = prefixes.get(prefix);
    if (owner !== undefined && owner !== connection.serverName) prefix = `${prefix}_${shortHash(connection.serverName)}`;
    prefixes.set(prefix, connection.serverName);
    for (const tool of catalogs[i] ?? []) {
      const name = toolName(prefix, tool.name);
      set[name] = toAiTool(connection, tool, limits);
      origin.set(name, Object.freeze({ server: connection.serverName, tool: tool.name }));
    }
  });
  origins.set(set, origin);
  return set;
}

/** `<prefix>__<tool>` in the characters and length providers accept; a name cut to fit ends with a hash of the whole. */
function toolName(prefix: string, tool: string): string {
  const name = `${prefix}__${sanitise(tool)}`;
  return name.length <= NAME_LIMIT ? name : `${name.slice(0, NAME_LIMIT - 9)}_${shortHash(name)}`;
}

const sanitise = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_');
const shortHash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);

function toAiTool(connection: UserMcpConnection, tool: McpTool, limits: { maxResultChars: number; timeout: number }): ToolSet[string] {
  const schema = tool.inputSchema as Record<string, unknown>;
  return dynamicTool({
    description: tool.description ?? tool.title ?? tool.name,
    inputSchema: jsonSchema({ ...schema, properties: (schema['properties'] as object | undefined) ?? {} } as Parameters<typeof jsonSchema>[0]),
    execute: async (input, { abortSignal }) => {
      const current = currentUserUuid();
      if (current !== undefined && current !== connection.userUuid) {
        throw new Error(`This tool set belongs to another user; call getUserTools() inside the current user's request.`);
      }
      const signals = [abortSignal, getRequestSignal()].filter((s): s is AbortSignal => s !== undefined);
      const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
      let result: Awaited<ReturnType<UserMcpConnection['callTool']>>;
      try {
        result = await connection.callTool(tool.name, (input ?? {}) as Record<string, unknown>, {
          ...(signal !== undefined ? { signal } : {}),
          timeout: limits.timeout,
        });
      } catch (error) {
        countToolCall(connection.serverName, connection.userUuid, false);
        if (signal?.aborted === true) throw error;
        throw new Error(`Tool "${tool.name}" of MCP server "${connection.serverName}" failed: ${reasonOf(error)}`, { cause: error });
      }
      countToolCall(connection.serverName, connection.userUuid, result.isError !== true);
      return boundResult(result, limits.maxResultChars);
    },
    toModelOutput: ({ output }) => {
      const result = output as BoundedResult;
      return result.isError === true ? { type: 'error-text', value: result.text } : { type: 'text', value: result.text };
    },
  });
}

/**
 * What the model is told of a failed call. The text goes to the LLM
 * provider, so connection failures (whose messages name the server's URL or
 * command) are told by their code only; the server's own errors (a time-out,
 * bad arguments) by their message. The whole error stays in `cause`.
 */
function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_MCP_')) {
    return code === 'ERR_MCP_CONNECTION_LOST'
      ? `the connection broke during the call; it may or may not have run (${code})`
      : code === 'ERR_MCP_TOOL_NOT_ALLOWED'
        ? `the operator's policy hides this tool (${code})`
        : `the server could not be reached (${code}); it may work again shortly`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** A tool's result as the loop keeps it: its text, bounded. */
export interface BoundedResult {
  readonly text: string;
  readonly isError: boolean;
  /** Characters left out by the bound (0 when whole). */
  readonly truncated: number;
}

/**
 * The text of an MCP tool result (text parts; resources by their text or
 * URI; images and audio by a placeholder; `structuredContent` as JSON when
 * there is no content), cut to `max` characters with a marker saying so.
 */
export function boundResult(result: { content?: unknown; structuredContent?: unknown; isError?: unknown }, max: number): BoundedResult {
  const parts = Array.isArray(result.content) ? (result.content as Array<Record<string, unknown>>) : [];
  const texts = parts.map((part) => {
    switch (part['type']) {
      case 'text':
        return String(part['text'] ?? '');
      case 'resource': {
        const r = (part['resource'] ?? {}) as Record<string, unknown>;
        return typeof r['text'] === 'string' ? r['text'] : `[resource ${String(r['uri'] ?? '')}]`;
      }
      case 'resource_link':
        return `[resource ${String(part['uri'] ?? '')}]`;
      default:
        return `[${String(part['type'])} ${String(part['mimeType'] ?? '')}]`.replace(' ]', ']');
    }
  });
  let text = texts.join('\n');
  if (text === '' && result.structuredContent !== undefined) text = JSON.stringify(result.structuredContent);
  const isError = result.isError === true;
  if (text.length <= max) return { text, isError, truncated: 0 };
  const left = text.length - max;
  return { text: `${text.slice(0, max)}\n[truncated: the tool returned ${text.length} characters; the last ${left} were left out]`, isError, truncated: left };
}
