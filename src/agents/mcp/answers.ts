/**
 * Checks of what an MCP client answered, before the helpers use it: the SDK
 * `Client` validates its server's answers, but `getUserMcpTools()` and
 * `callUserMcpTool()` accept any object with its surface, and a look-alike
 * answering something else would otherwise fail deep inside (`page.tools is
 * not iterable`) or hand the app a result without `content`. A wrong answer
 * is an {@link McpInvalidAnswerError} naming the method and what came back
 * (its shape, never its values).
 *
 * @module
 */
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { McpInvalidAnswerError } from '../../errors.js';

/** One page of `listTools()`, checked. */
export interface ToolsPage {
  readonly tools: readonly Tool[];
  readonly nextCursor: string | undefined;
}

/** `answer` of `listTools()` as a page, or an {@link McpInvalidAnswerError}. */
export function toolsPage(answer: unknown, cursor: string | undefined): ToolsPage {
  const call = `listTools(${cursor === undefined ? '' : '{ cursor }'})`;
  if (!isRecord(answer) || !Array.isArray(answer['tools'])) {
    throw invalid(call, answer, '{ tools: Tool[], nextCursor?: string }');
  }
  const tools = answer['tools'] as unknown[];
  for (let i = 0; i < tools.length; i++) {
    const tool = tools[i];
    if (!isRecord(tool) || typeof tool['name'] !== 'string' || tool['name'] === '' || !isRecord(tool['inputSchema'])) {
      throw invalid(call, tool, 'a Tool ({ name: string, inputSchema: object, … })', `tools[${i}]`);
    }
  }
  const next = answer['nextCursor'];
  if (next !== undefined && (typeof next !== 'string' || next === '')) {
    throw invalid(call, next, 'a non-empty string or undefined', 'nextCursor');
  }
  return { tools: tools as Tool[], nextCursor: next };
}

/** `answer` of `callTool()` as a result, or an {@link McpInvalidAnswerError}. */
export function toolResult(answer: unknown, name: string): CallToolResult {
  // `toolResult` instead of `content`: protocol 2024-10-07 (the SDK's CompatibilityCallToolResultSchema).
  if (!isRecord(answer) || (!Array.isArray(answer['content']) && !('toolResult' in answer))) {
    throw invalid(`callTool({ name: ${JSON.stringify(name)} })`, answer, '{ content: ContentBlock[], isError?: boolean, … }');
  }
  return answer as CallToolResult;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(call: string, value: unknown, expected: string, part?: string): McpInvalidAnswerError {
  const what = part === undefined ? 'resolved to' : `answered ${part} as`;
  return new McpInvalidAnswerError(
    `The user's MCP client's ${call} ${what} ${shapeOf(value)}, not ${expected}. ` +
      'Hand over an SDK Client from @modelcontextprotocol/sdk (or an object whose listTools()/callTool() answer as it does), ' +
      'or configure resources.mcpClient = createMcpClientFactory(…).',
  );
}

/** What a value is, without its contents: `undefined`, `a string`, `an array of 2`, `an object with keys [tool, next]`. */
export function shapeOf(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') {
    const keys = Object.keys(value);
    const shown = keys.slice(0, 8).map((k) => (/^[\w$-]{1,40}$/.test(k) ? k : JSON.stringify(k.slice(0, 40))));
    return keys.length === 0 ? 'an empty object' : `an object with keys [${shown.join(', ')}${keys.length > 8 ? ', …' : ''}]`;
  }
  return `a ${typeof value}`;
}
