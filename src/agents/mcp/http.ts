/**
 * Streamable HTTP links: one MCP session on the SDK's
 * `StreamableHTTPClientTransport`, terminated (HTTP DELETE) on close so the
 * server frees it at once.
 *
 * @internal
 * @module
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LinkState, connectOrClose, newClient, type McpLink } from './health.js';
import type { ResolvedTarget } from './targets.js';

/** What opening a link needs besides its target. */
export interface OpenContext {
  /** The user the link is for, or `'(shared)'`. */
  userUuid: string;
  clientInfo: { name: string; version: string };
  connectTimeout: number;
  closeTimeout: number;
}

class HttpLink extends LinkState implements McpLink {
  readonly client: Client;
  readonly #transport: StreamableHTTPClientTransport;
  readonly #closeTimeout: number;
  #closing: Promise<void> | undefined;

  constructor(target: Extract<ResolvedTarget, { kind: 'http' }>, ctx: OpenContext) {
    super();
    this.client = newClient(ctx.clientInfo, this);
    this.#transport = new StreamableHTTPClientTransport(target.url, {
      requestInit: { headers: { ...target.headers } },
      // A dropped SSE stream is not worth retrying for long: requests find out on their own.
      reconnectionOptions: { maxRetries: 2, initialReconnectionDelay: 500, maxReconnectionDelay: 2000, reconnectionDelayGrowFactor: 2 },
    });
    this.#closeTimeout = ctx.closeTimeout;
  }

  get sessionId(): string | undefined {
    return this.#transport.sessionId;
  }

  get pid(): undefined {
    return undefined;
  }

  connect(timeout: number): Promise<void> {
    return this.client.connect(this.#transport, { timeout });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasAlive = this.alive;
    this.markDead('closed');
    let timer: NodeJS.Timeout | undefined;
    try {
      // A session the server already forgot (restart) needs no DELETE.
      if (wasAlive && this.#transport.sessionId !== undefined) {
        await Promise.race([
          this.#transport.terminateSession().catch(() => undefined),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, this.#closeTimeout);
            timer.unref();
          }),
        ]);
      }
    } finally {
      clearTimeout(timer);
      await this.client.close().catch(() => undefined);
    }
  }
}

/** Opens one MCP session to `target`; rejects with `McpConnectError`. */
export function openHttpLink(target: Extract<ResolvedTarget, { kind: 'http' }>, ctx: OpenContext): Promise<McpLink> {
  return connectOrClose(new HttpLink(target, ctx), ctx.connectTimeout, (reason) =>
    `Could not connect user ${ctx.userUuid} to MCP server "${target.name}" at ${target.url.href}: ${reason}. ` +
      'Check that the server is running and speaks Streamable HTTP.',
  );
}
