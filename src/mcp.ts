/**
 * `koa-user-context/mcp`: per-user MCP clients on `@modelcontextprotocol/sdk`
 * (an optional peer dependency; the root entry never loads it).
 *
 * @module
 */
export * from './agents/mcp/index.js';
export {
  McpBackoffError,
  McpConnectError,
  McpConnectionLostError,
  McpInvalidAnswerError,
  McpPoolExhaustedError,
  McpToolNotAllowedError,
} from './errors.js';
