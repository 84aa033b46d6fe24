/**
 * Health of a live MCP connection: the {@link McpLink} every transport
 * builds, how an error says the connection is gone (and whether the request
 * reached the server at all), and the back-off after failed connects.
 *
 * @internal
 * @module
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { McpConnectError } from '../../errors.js';
import { rejectUnknownOptions } from '../../options.js';
import { redactText } from '../../context/redact.js';

/** One live connection (an MCP session, or a stdio child) as the pool holds it. */
export interface McpLink {
  readonly client: Client;
  /** `false` once the transport closed, the child exited or the session was found gone. */
  readonly alive: boolean;
  /** The MCP session id (Streamable HTTP) or `undefined`. */
  readonly sessionId: string | undefined;
  /** The child's process id (stdio) or `undefined`. */
  readonly pid: number | undefined;
  /** Cached tool catalog of this connection (cleared by `tools/list_changed`). */
  tools: Promise<readonly Tool[]> | undefined;
  /** Marks the link dead without closing it yet (the pool closes it). */
  markDead(reason: string): void;
  /** Called once when the link dies by itself (transport closed, child exited). */
  onDead: ((reason: string) => void) | undefined;
  /** Ends the session / the child. Idempotent. */
  close(): Promise<void>;
}

/**
 * Connects a new link within `timeout` ms, or closes it and rejects with an
 * `McpConnectError` whose message is `failure(reason)` (what failed and how to
 * fix it). Every transport opens its links through this.
 */
export async function connectOrClose<L extends McpLink & { connect(timeout: number): Promise<void> }>(
  link: L,
  timeout: number,
  failure: (reason: string) => string,
): Promise<L> {
  try {
    await link.connect(timeout);
  } catch (cause) {
    await link.close();
    // The message reaches error bodies and logs: no URL password, no query credential.
    throw new McpConnectError(redactText(failure(cause instanceof Error ? cause.message : String(cause))), { cause });
  }
  return link;
}

/** What an error of a call says about the link it ran on. */
export type Verdict =
  /** The request never reached a server that knows the session: safe to rebuild and repeat. */
  | 'not-delivered'
  /** The link broke while the request was out: rebuild, but the call may have run. */
  | 'lost'
  /** An answer from a healthy link (a tool error, a time-out, an abort): keep the link. */
  | 'app';

const NOT_DELIVERED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Classifies an error thrown by a `Client` call on `link`. */
export function verdictOf(error: unknown, link: McpLink): Verdict {
  if (error instanceof StreamableHTTPError) {
    // 404 is the spec's "session not found"; some servers (the reference
    // server-everything) answer 400 "No valid session ID" for an unknown session.
    if ((error.code === 404 || error.code === 400) && link.sessionId !== undefined) return 'not-delivered';
    return 'app';
  }
  if (error instanceof McpError) {
    if (error.code === ErrorCode.ConnectionClosed && /connection closed/i.test(error.message)) return 'lost';
    return 'app';
  }
  if (error instanceof Error) {
    if (error.message === 'Not connected') return 'not-delivered';
    const code = causeCode(error);
    if (code !== undefined && NOT_DELIVERED_CODES.has(code)) return 'not-delivered';
    if (error.name === 'TypeError' && /fetch failed/i.test(error.message)) return 'lost';
    if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'lost';
  }
  return 'app';
}

function causeCode(error: Error): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Options of the back-off after failed connects. */
export interface BackoffOptions {
  /**
   * Milliseconds of the first wait after a failed connect.
   * @default 250
   */
  initialDelay?: number;
  /**
   * Longest wait in milliseconds.
   * @default 5_000
   */
  maxDelay?: number;
  /**
   * Growth factor of the wait per consecutive failure.
   * @default 2
   */
  factor?: number;
}

/**
 * Consecutive connect failures per pool key. While a key is backing off,
 * `waitLeft(key)` is positive and callers fail fast instead of connecting.
 * At most `limit` keys are remembered (the oldest go first).
 */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #limit: number;
  readonly #state = new Map<string, { failures: number; until: number }>();

  constructor(options: BackoffOptions, limit = 10_000) {
    rejectUnknownOptions(options, ['initialDelay', 'maxDelay', 'factor'], 'createMcpClientFactory() options.backoff');
    const { initialDelay = 250, maxDelay = 5_000, factor = 2 } = options;
    if (!Number.isFinite(initialDelay) || initialDelay < 0) throw new TypeError('options.backoff.initialDelay must be ≥ 0 ms');
    if (!Number.isFinite(maxDelay) || maxDelay < initialDelay) throw new TypeError('options.backoff.maxDelay must be ≥ initialDelay');
    if (!Number.isFinite(factor) || factor < 1) throw new TypeError('options.backoff.factor must be ≥ 1');
    this.#initial = initialDelay;
    this.#max = maxDelay;
    this.#factor = factor;
    this.#limit = limit;
  }

  /** Milliseconds until `key` may connect again (0 = now). */
  waitLeft(key: string, now = Date.now()): number {
    const s = this.#state.get(key);
    return s === undefined ? 0 : Math.max(0, s.until - now);
  }

  /** Records a failed connect; returns the wait before the next try. */
  failed(key: string, now = Date.now()): number {
    const failures = (this.#state.get(key)?.failures ?? 0) + 1;
    const delay = Math.min(this.#max, this.#initial * this.#factor ** (failures - 1));
    this.#state.delete(key);
    this.#state.set(key, { failures, until: now + delay });
    if (this.#state.size > this.#limit) this.#state.delete(this.#state.keys().next().value!);
    return delay;
  }

  /** Records a successful connect. */
  succeeded(key: string): void {
    this.#state.delete(key);
  }
}

/** The alive flag and death notification every link shares. */
export abstract class LinkState {
  tools: Promise<readonly Tool[]> | undefined;
  onDead: ((reason: string) => void) | undefined;
  #dead: string | undefined;

  get alive(): boolean {
    return this.#dead === undefined;
  }

  /** Why the link died, if it did. */
  get deathReason(): string | undefined {
    return this.#dead;
  }

  markDead(reason: string): void {
    if (this.#dead !== undefined) return;
    this.#dead = reason;
    this.tools = undefined;
    this.onDead?.(reason);
  }
}

/**
 * A new SDK `Client` for `link`: a `tools/list_changed` notification drops
 * the link's cached catalog, and the transport closing marks the link dead.
 */
export function newClient(clientInfo: { name: string; version: string }, link: LinkState): Client {
  const client = new Client(clientInfo, {
    listChanged: {
      tools: {
        autoRefresh: false,
        debounceMs: 0,
        onChanged: () => {
          link.tools = undefined;
        },
      },
    },
  });
  client.onclose = () => link.markDead('the transport closed');
  return client;
}
