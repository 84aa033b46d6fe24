/**
 * `koa-user-context/mcp`: per-user MCP clients on `@modelcontextprotocol/sdk`
 * (an optional peer dependency; the root entry never loads it).
 *
 * @module
 */
export * from './agents/mcp.js';
