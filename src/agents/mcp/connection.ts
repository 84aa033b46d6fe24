/**
 * {@link UserMcpConnection}: one user's handle on one MCP server
 * configuration — the value the store caches as the user's `mcpClient`. The
 * live link under it (an MCP session or a stdio child) belongs to the pool: it
 * may be closed to respect `maxConnections`, or die with its server, and is
 * then rebuilt on the next call. Calls that the dead link never delivered are
 * repeated once on the new link; a call cut off mid-way is not (it may have
 * run) and fails with `McpConnectionLostError`.
 *
 * @module
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { stamp } from '../../brand.js';
import { McpConnectionLostError, McpInvalidAnswerError, McpToolNotAllowedError } from '../../errors.js';
import { getRequestSignal } from '../../api/request-signal.js';
import { redactText } from '../../context/redact.js';
import { toolsPage } from './answers.js';
import { verdictOf, type McpLink } from './health.js';
import { CONNECTION_KIND } from './servers.js';
import type { McpPool, PoolEntry } from './pool.js';
import type { ResolvedTarget } from './targets.js';

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
 * One user's connection to one MCP server: its tool catalog (cached per live
 * link), tool calls, and its lifetime. Built by {@link createMcpClientFactory};
 * read it with `getUserMcpConnection()`.
 */
export class UserMcpConnection {
  /** @internal The brand other copies of the package recognise. */
  static readonly kind = CONNECTION_KIND;
  readonly serverName: string;
  /** Prefix of this server's tools in the user's AI SDK tool set (`<prefix>__<tool>`): the registry's `toolPrefix`, else the server's name. */
  readonly toolPrefix: string;
  /** Whether the operator's tool policy (the registry entry's `tools`) lets this tool through. */
  readonly allowsTool: (name: string) => boolean;
  readonly userUuid: string;
  /** `'http'` (Streamable HTTP) or `'stdio'` (a child process). */
  readonly transport: 'http' | 'stdio';
  /** The endpoint, for Streamable HTTP servers. */
  readonly url: URL | undefined;
  /** Whether one link serves every user of this server configuration. */
  readonly shared: boolean;
  readonly #pool: McpPool;
  readonly #entry: PoolEntry;
  readonly #filtered = new WeakMap<readonly Tool[], readonly Tool[]>();
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createMcpClientFactory}. */
  constructor(pool: McpPool, entry: PoolEntry, target: ResolvedTarget, userUuid: string) {
    this.#pool = pool;
    this.#entry = entry;
    this.serverName = target.name;
    this.userUuid = userUuid;
    this.transport = target.kind;
    this.url = target.kind === 'http' ? target.url : undefined;
    this.shared = target.shared;
    this.toolPrefix = target.toolPrefix;
    this.allowsTool = target.allows;
    stamp(this, UserMcpConnection);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Whether a live link is open now (it is rebuilt on the next call otherwise). */
  get connected(): boolean {
    return this.#entry.link?.alive === true;
  }

  /** The MCP session id of the live link (Streamable HTTP), if any. */
  get sessionId(): string | undefined {
    return this.#entry.link?.sessionId;
  }

  /** The process id of the live link's child (stdio), if any. */
  get pid(): number | undefined {
    return this.#entry.link?.pid;
  }

  /**
   * The SDK client of the live link, connecting first if needed. Prefer the
   * methods of this class: a client kept across calls may be closed by the
   * pool or die with its server.
   */
  client(): Promise<Client> {
    return this.#run((link) => Promise.resolve(link.client), true);
  }

  /**
   * Connects now (the factory calls it so a bad server fails the first
   * request). Not a use: the new link is kept for this handle's first call.
   */
  async connect(): Promise<void> {
    await this.#run(() => Promise.resolve(), true, true);
  }

  /**
   * The server's tools that the operator's policy lets through, fetched once
   * per live link (all pages) and cached until the server says the list
   * changed, the link is rebuilt, or {@link invalidateTools} is called: the
   * same array until then. Concurrent callers share one fetch.
   */
  listTools(): Promise<readonly Tool[]> {
    return this.#run((link) => {
      if (link.tools === undefined) {
        const tools = fetchTools(link.client);
        link.tools = tools;
        tools.catch(() => {
          if (link.tools === tools) link.tools = undefined;
        });
      }
      return link.tools;
    }, true).then((all) => this.#visible(all));
  }

  /** The tools of `all` the policy lets through: the same array for the same catalog (a shared link's catalog is filtered per user's policy). */
  #visible(all: readonly Tool[]): readonly Tool[] {
    let visible = this.#filtered.get(all);
    if (visible === undefined) {
      visible = all.every((t) => this.allowsTool(t.name)) ? all : Object.freeze(all.filter((t) => this.allowsTool(t.name)));
      this.#filtered.set(all, visible);
    }
    return visible;
  }

  /** Drops the cached catalog; the next `listTools()` asks the server again. */
  invalidateTools(): void {
    const link = this.#entry.link;
    if (link !== undefined) link.tools = undefined;
  }

  /** Calls a tool of this server; rejects with `McpToolNotAllowedError` for a tool the operator's policy hides. */
  callTool(name: string, args: Record<string, unknown> = {}, options: McpCallOptions = {}): Promise<CallToolResult> {
    if (!this.allowsTool(name)) {
      return Promise.reject(new McpToolNotAllowedError(`Tool "${name}" of MCP server "${this.serverName}" is hidden by the operator's tool policy (the registry entry's tools: { allow, hide }).`));
    }
    const signal = options.signal ?? getRequestSignal();
    return this.#run(async (link) => {
      const result = await link.client.callTool({ name, arguments: args }, undefined, {
        ...(signal !== undefined ? { signal } : {}),
        ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
      });
      return result as CallToolResult;
    }, false);
  }

  /**
   * Detaches from the pool: the live link is closed (the MCP session
   * terminated, the child ended) unless it is shared with other users.
   * Idempotent. The store calls it; apps do not.
   */
  close(): Promise<void> {
    this.#closing ??= this.#pool.detach(this.#entry);
    return this.#closing;
  }

  /**
   * Runs `fn` on a live link. A link found dead is dropped and `fn` repeated
   * once on a new one when the request never reached the server (or when
   * `idempotent`); otherwise the loss is reported.
   */
  async #run<T>(fn: (link: McpLink) => Promise<T>, idempotent: boolean, connectOnly = false): Promise<T> {
    if (this.#closing !== undefined) throw this.#closedError();
    for (let attempt = 0; ; attempt++) {
      let used: McpLink | undefined;
      try {
        return await this.#pool.use(this.#entry, (link) => {
          used = link;
          return fn(link);
        }, connectOnly);
      } catch (error) {
        if (used === undefined) throw error;
        const verdict = verdictOf(error, used);
        if (verdict === 'app') throw error;
        await this.#pool.drop(this.#entry, used, verdict === 'lost' ? 'lost mid-call' : 'session or child gone');
        if (attempt === 0 && (verdict === 'not-delivered' || idempotent) && this.#closing === undefined) continue;
        throw new McpConnectionLostError(
          `The connection of user ${this.userUuid} to MCP server "${this.serverName}" broke during the call ` +
            `(${redactText(error instanceof Error ? error.message : String(error))}); it may or may not have run. ` +
            'The connection is rebuilt on the next call: retry if the tool is safe to repeat.',
          { cause: error, retryAfterMs: 0 },
        );
      }
    }
  }

  #closedError(): Error {
    return new Error(
      `The MCP connection of user ${this.userUuid} to "${this.serverName}" is closed: the user switched server ` +
        'or the context was evicted. Get the current one with getUserMcpConnection().',
    );
  }
}

/**
 * All pages of `tools/list`, each checked ({@link toolsPage}). A cursor the
 * client gave before ends the listing with an error instead of a loop.
 */
export async function fetchTools(client: { listTools(params?: { cursor: string }): Promise<unknown> }): Promise<readonly Tool[]> {
  const tools: Tool[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = toolsPage(await client.listTools(cursor === undefined ? undefined : { cursor }), cursor);
    tools.push(...page.tools);
    cursor = page.nextCursor;
    if (cursor !== undefined) {
      if (seen.has(cursor)) {
        throw new McpInvalidAnswerError(
          `The user's MCP client's listTools({ cursor }) gave a nextCursor it gave before (after ${tools.length} tools): ` +
            'its pages never end. Fix the server or client paging.',
        );
      }
      seen.add(cursor);
    }
  } while (cursor !== undefined);
  return Object.freeze(tools);
}
