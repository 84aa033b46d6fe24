/**
 * Per-user MCP clients on the real `@modelcontextprotocol/sdk`: Streamable
 * HTTP sessions and stdio child processes from the operator's registry,
 * built lazily per user and server configuration by the store's
 * `resources.mcpClient` spec, health-checked and rebuilt, bounded per
 * instance, optionally shared.
 *
 * @module
 */
export { createMcpClientFactory, type McpClientFactory, type McpClientFactoryOptions } from './factory.js';
export { UserMcpConnection, type McpCallOptions } from './connection.js';
export {
  callUserMcpTool,
  getUserMcpConnection,
  getUserMcpConnections,
  getUserMcpTools,
  isMcpClientLike,
  type McpClientLike,
} from './helpers.js';
export { UserMcpServers } from './servers.js';
export type { McpHttpTarget, McpServerDefinition, McpServerTarget, McpStdioTarget, McpToolPolicy } from './targets.js';
export type { BackoffOptions } from './health.js';
export type { McpPoolStats } from './pool.js';
export { defaultStderrSink, stdioCounters, type McpStderrSink } from './stdio.js';
export type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
