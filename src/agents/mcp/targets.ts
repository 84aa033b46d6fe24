/**
 * Where a user's MCP server is: the operator's registry entries (Streamable
 * HTTP endpoints or stdio commands), their validation, and the key that
 * identifies "one server configuration" for the connection pool.
 *
 * Users pick a server *name* (`mcpServerName`); the operator's code maps it to
 * a target here. Commands, arguments, URLs and environments never come from
 * user-editable fields.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { UserConfig } from '../../context/types.js';
import { redactText } from '../../context/redact.js';

/** An MCP server reached over Streamable HTTP. */
export interface McpHttpTarget {
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
  /**
   * The server answers every user the same: one connection serves all users
   * that resolve to this same target (same URL and headers). Only for servers
   * that keep no per-user state.
   * @default false
   */
  shared?: boolean;
  /**
   * Which of this server's tools its users' LLMs see and may call: names
   * (`'read_graph'`) or prefixes ending in `*` (`'read_*'`). A hidden tool is
   * left out of `listTools()` and the AI SDK tool set, and `callTool()`
   * refuses it.
   * @default {} (every tool)
   */
  tools?: McpToolPolicy;
  /**
   * Prefix of this server's tools in a user's tool set (`<prefix>__<tool>`),
   * stable whatever other servers the user has.
   * @default the entry's name
   */
  toolPrefix?: string;
}

/** An MCP server run as a child process speaking MCP on its stdin/stdout. */
export interface McpStdioTarget {
  /** Executable, e.g. `process.execPath` (node) or an absolute path. Run without a shell. */
  command: string;
  /**
   * Its arguments.
   * @default []
   */
  args?: readonly string[];
  /**
   * Working directory of the child.
   * @default the current directory
   */
  cwd?: string;
  /**
   * Environment of the child, on top of a minimal safe set (HOME, LOGNAME,
   * PATH, SHELL, TERM, USER). Per-user values (a user's API key, their data
   * file) go here; the rest of this process's environment is not inherited.
   * @default {}
   */
  env?: Readonly<Record<string, string>>;
  /**
   * Name shown in errors, in the stderr log and by `connection.serverName`.
   * @default config.mcpServerName, else the command's file name
   */
  name?: string;
  /**
   * One child serves every user that resolves to this same target (same
   * command, arguments, directory and environment).
   * @default false
   */
  shared?: boolean;
  /**
   * Which of this server's tools its users' LLMs see and may call: names
   * (`'read_graph'`) or prefixes ending in `*` (`'read_*'`). A hidden tool is
   * left out of `listTools()` and the AI SDK tool set, and `callTool()`
   * refuses it.
   * @default {} (every tool)
   */
  tools?: McpToolPolicy;
  /**
   * Prefix of this server's tools in a user's tool set (`<prefix>__<tool>`),
   * stable whatever other servers the user has.
   * @default the entry's name
   */
  toolPrefix?: string;
}

/** The operator's tool policy of one server: `allow` first (when given), then `hide`. */
export interface McpToolPolicy {
  /**
   * Only these tools (names, or prefixes ending in `*`).
   * @default every tool
   */
  allow?: readonly string[];
  /**
   * Never these tools (names, or prefixes ending in `*`).
   * @default none
   */
  hide?: readonly string[];
}

/** What a registry entry or `resolveServer()` may give: a target, or a bare URL. */
export type McpServerTarget = McpHttpTarget | McpStdioTarget;

/** What every validated target has: its name, tool policy and prefix, pool key. */
interface TargetCommon {
  name: string;
  shared: boolean;
  /** Whether the policy lets a tool of this name through. */
  allows: (tool: string) => boolean;
  toolPrefix: string;
  key: string;
}

/** A target after validation, with its pool key. */
export type ResolvedTarget =
  | (TargetCommon & { kind: 'http'; url: URL; headers: Readonly<Record<string, string>> })
  | (TargetCommon & {
      kind: 'stdio';
      command: string;
      args: readonly string[];
      cwd: string | undefined;
      env: Readonly<Record<string, string>>;
    });

/** A registry entry: a fixed target, or one computed per user (e.g. with a per-user env). */
export type McpServerDefinition =
  | McpServerTarget
  | string
  | URL
  | ((config: UserConfig, userUuid: string) => McpServerTarget | string | URL | null | undefined);

/**
 * The names of the servers a configuration picks: `mcpServerNames` when set
 * (duplicates dropped, order kept), else `mcpServerName` alone.
 */
export function serverNamesOf(config: UserConfig): readonly string[] | null {
  const names = config.mcpServerNames;
  if (names == null) return null;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && n !== '')) {
    throw new TypeError('mcpServerNames must be an array of server names from the registry, or null');
  }
  return [...new Set(names)];
}

/** Builds `resolveServer` from a name → definition registry, by `config.mcpServerName`. */
export function resolverOf(
  servers: Readonly<Record<string, McpServerDefinition>>,
): (config: UserConfig, userUuid: string) => McpServerTarget | string | URL | null | undefined {
  if (servers === null || typeof servers !== 'object') throw new TypeError('options.servers must be an object { name: target }');
  const table = new Map(Object.entries(servers));
  return (config, userUuid) => {
    const name = config.mcpServerName;
    if (name == null) return null;
    const found = table.get(name);
    if (found === undefined) {
      throw new TypeError(
        `MCP server "${name}" is not in the registry (options.servers has ${[...table.keys()].join(', ') || 'no entries'}); ` +
          'validate mcpServerName when the user configures it.',
      );
    }
    const target = typeof found === 'function' ? found(config, userUuid) : found;
    return target == null ? null : typeof target === 'string' || target instanceof URL ? { url: target, name } : { name, ...target };
  };
}

/** Validates what `resolveServer()` returned; `null` when the user has no MCP server. */
export function normaliseTarget(found: McpServerTarget | string | URL | null | undefined, config: UserConfig): ResolvedTarget | null {
  if (found == null) return null;
  if (typeof found === 'string' || found instanceof URL) return httpTarget({ url: found }, config);
  if (typeof found !== 'object') throw new TypeError(`resolveServer() must return { url } or { command }, got ${typeof found}`);
  if ('command' in found && found.command !== undefined) {
    if ('url' in found) throw new TypeError('resolveServer() returned both url and command; give one');
    return stdioTarget(found, config);
  }
  if (!('url' in found)) throw new TypeError('resolveServer() must return { url } (Streamable HTTP) or { command } (stdio)');
  return httpTarget(found, config);
}

function httpTarget(target: McpHttpTarget, config: UserConfig): ResolvedTarget {
  let url: URL;
  try {
    url = new URL(target.url);
  } catch (cause) {
    throw new TypeError(`resolveServer() returned an invalid URL: ${redactText(String(target.url))}`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`resolveServer() must return an http(s) URL or a { command } for stdio, got ${url.protocol}`);
  }
  const headers = stringRecord(target.headers, 'headers');
  const name = target.name ?? config.mcpServerName ?? url.host;
  return { kind: 'http', url, headers, ...common(target, name), key: digest(['http', url.href, headers]) };
}

function stdioTarget(target: McpStdioTarget, config: UserConfig): ResolvedTarget {
  if (typeof target.command !== 'string' || target.command.length === 0) {
    throw new TypeError('resolveServer() returned a stdio target without a command string');
  }
  const args = target.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    throw new TypeError('the args of a stdio MCP target must be an array of strings');
  }
  if (target.cwd !== undefined && typeof target.cwd !== 'string') throw new TypeError('the cwd of a stdio MCP target must be a string');
  const env = stringRecord(target.env, 'env');
  const fallback = target.command.split(/[\\/]/).pop() ?? target.command;
  return {
    kind: 'stdio',
    command: target.command,
    args: Object.freeze([...args]),
    cwd: target.cwd,
    env,
    ...common(target, target.name ?? config.mcpServerName ?? fallback),
    key: digest(['stdio', target.command, args, target.cwd ?? null, env]),
  };
}

function common(target: McpServerTarget, name: string): Omit<TargetCommon, 'key'> {
  const prefix = target.toolPrefix ?? name;
  if (typeof prefix !== 'string' || prefix === '') throw new TypeError('the toolPrefix of an MCP target must be a non-empty string');
  return { name, shared: target.shared === true, allows: policyOf(target.tools), toolPrefix: prefix };
}

/** The policy's test; every tool passes without one. */
function policyOf(policy: McpToolPolicy | undefined): (tool: string) => boolean {
  if (policy === undefined) return () => true;
  if (policy === null || typeof policy !== 'object') throw new TypeError('the tools policy of an MCP target must be { allow?, hide? }');
  for (const key of Object.keys(policy)) {
    if (key !== 'allow' && key !== 'hide') throw new TypeError(`unknown key "${key}" in the tools policy of an MCP target (use allow or hide)`);
  }
  const matcher = (list: readonly string[] | undefined, what: string): ((tool: string) => boolean) | undefined => {
    if (list === undefined) return undefined;
    if (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p !== '')) {
      throw new TypeError(`tools.${what} of an MCP target must be an array of tool names (or prefixes ending in *)`);
    }
    const exact = new Set(list.filter((p) => !p.endsWith('*')));
    const prefixes = list.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
    return (tool) => exact.has(tool) || prefixes.some((p) => tool.startsWith(p));
  };
  const allow = matcher(policy.allow, 'allow');
  const hide = matcher(policy.hide, 'hide');
  return (tool) => (allow === undefined || allow(tool)) && (hide === undefined || !hide(tool));
}

function stringRecord(value: unknown, what: string): Readonly<Record<string, string>> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new TypeError(`the ${what} of an MCP target must be an object of strings`);
  }
  return Object.freeze({ ...(value as Record<string, string>) });
}

/**
 * A stable key of a configuration. Hashed, so pool keys (which show up in
 * debugging output) never carry headers or environment values in clear.
 */
function digest(parts: unknown[]): string {
  const sorted = parts.map((p) =>
    p !== null && typeof p === 'object' && !Array.isArray(p) ? Object.entries(p).sort(([a], [b]) => (a < b ? -1 : 1)) : p,
  );
  return createHash('sha256').update(JSON.stringify(sorted)).digest('base64url').slice(0, 22);
}
