/**
 * Agent integration: MCP connections, profile overrides, and a client that
 * went away mid-request.
 *
 * @module
 */
import { UserContextError, type UserContextErrorCode } from './base.js';

/**
 * A user's MCP client could not connect to (or initialise with) its server.
 * The base class of every MCP connection failure below; an app answers all
 * of them with 502 or 503, never 500.
 */
export class McpConnectError extends UserContextError {
  static override readonly code: UserContextErrorCode = 'ERR_MCP_CONNECT_FAILED';
  /** Milliseconds after which a retry may succeed (for `Retry-After`); `undefined` when unknown. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * The MCP connection broke while a call was on the wire (the stdio child
 * exited, the stream was cut): the call may or may not have run on the server,
 * so it was not repeated. The connection is rebuilt on the next call.
 */
export class McpConnectionLostError extends McpConnectError {
  static override readonly code = 'ERR_MCP_CONNECTION_LOST';
}

/**
 * Connecting to this MCP server failed moments ago; until the back-off delay
 * (`retryAfterMs`) has passed, requests fail fast instead of piling up on a
 * server that is down.
 */
export class McpBackoffError extends McpConnectError {
  static override readonly code = 'ERR_MCP_BACKOFF';
}

/**
 * Every live MCP connection of this instance (`maxConnections`) was in use
 * for longer than `acquireTimeout`, so none could be closed to make room.
 */
export class McpPoolExhaustedError extends McpConnectError {
  static override readonly code = 'ERR_MCP_POOL_EXHAUSTED';
}

/**
 * The operator's tool policy for this MCP server (the registry entry's
 * `tools: { allow, hide }`) hides the tool that was called; it was not sent
 * to the server.
 */
export class McpToolNotAllowedError extends UserContextError {
  static override readonly code = 'ERR_MCP_TOOL_NOT_ALLOWED';
}

/**
 * The user's MCP client answered `listTools()` or `callTool()` with something
 * that is not an MCP answer (a look-alike of the SDK `Client`, or a transport
 * that mangles answers). The message names the method and the shape that
 * came back; nothing of it was used.
 */
export class McpInvalidAnswerError extends UserContextError {
  static override readonly code = 'ERR_MCP_INVALID_ANSWER';
}

/** A profile override given to `runWithProfile()` is not valid. */
export class InvalidProfileError extends UserContextError {
  static override readonly code = 'ERR_INVALID_PROFILE';
}

/**
 * The abort reason of a request's signal when the HTTP client went away
 * before the response was complete. Its `name` is `'AbortError'`, as code
 * that handles aborted fetches and LLM SDK calls expects.
 */
export class ClientDisconnectedError extends UserContextError {
  static override readonly code = 'ERR_CLIENT_DISCONNECTED';

  constructor(message = 'The HTTP client disconnected before the response was complete.', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}
