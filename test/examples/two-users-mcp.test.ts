import { describe, expect, it } from 'vitest';
import { EXAMPLE_SERVERS, MEMORY_TOOLS } from '../../examples/mcp-servers.js';
import { runDemo } from '../../examples/two-users.js';

const prefixed = (server: string, tools: readonly { name: string }[] | readonly string[]) => tools.map((t) => `${server}__${typeof t === 'string' ? t : t.name}`);
const EXPECTED = {
  // A has two servers: warehouse (Streamable HTTP) and a server-memory child of their own (stdio).
  A: { tools: [...prefixed('warehouse', EXAMPLE_SERVERS.warehouse), ...prefixed('memory', MEMORY_TOOLS)], calls: ['warehouse', 'memory'], ran: 'Google/gemini-2.5-flash' },
  B: { tools: prefixed('crm', EXAMPLE_SERVERS.crm), calls: ['crm', 'crm'], ran: 'Anthropic/claude-3-5-haiku' },
  C: { tools: prefixed('memory', MEMORY_TOOLS), calls: ['memory', 'memory'], ran: 'OpenAI/gpt-4o-mini' },
} as const;

describe('multi-user demo with MCP', () => {
  it('each user\'s LLM calls only their own MCP servers\' tools, on their own provider, model and key', async () => {
    const rows = await runDemo(6);
    expect(rows).toHaveLength(18);
    for (const row of rows) {
      expect(row.ok, JSON.stringify(row)).toBe(true);
      const want = EXPECTED[row.user as keyof typeof EXPECTED];
      expect([...row.toolsOffered].sort()).toEqual([...want.tools].sort());
      expect(row.toolCalls.map((c) => c.server)).toEqual(want.calls);
      expect(row.ran).toBe(want.ran);
    }
  });
});
