import { describe, expect, it } from 'vitest';
import { EXAMPLE_SERVERS, MEMORY_TOOLS } from '../../examples/mcp-servers.js';
import { runDemo } from '../../examples/two-users.js';

const EXPECTED = {
  A: { server: 'warehouse', tools: EXAMPLE_SERVERS.warehouse.map((t) => t.name), ran: 'Google/gemini-2.5-flash' },
  B: { server: 'crm', tools: EXAMPLE_SERVERS.crm.map((t) => t.name), ran: 'Anthropic/claude-3-5-haiku' },
  // User C's server is the reference server-memory over stdio (a child process).
  C: { server: 'memory', tools: [...MEMORY_TOOLS], ran: 'OpenAI/gpt-4o-mini' },
} as const;

describe('multi-user demo with MCP', () => {
  it('each user runs on their own provider/model and sees only their own MCP server\'s tools', async () => {
    const rows = await runDemo(6);
    expect(rows).toHaveLength(18);
    for (const row of rows) {
      expect(row.ok, JSON.stringify(row)).toBe(true);
      const want = EXPECTED[row.user as keyof typeof EXPECTED];
      expect(row.mcpServer).toBe(want.server);
      expect([...(row.tools ?? [])].sort()).toEqual([...want.tools].sort());
      expect(row.ran).toBe(want.ran);
    }
  });
});
