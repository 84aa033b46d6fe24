import { describe, expect, it } from 'vitest';
import { EXAMPLE_SERVERS } from '../../examples/mcp-servers.js';
import { runDemo } from '../../examples/two-users.js';

describe('two-user demo with MCP', () => {
  it('each user runs on their own provider/model and sees only their own MCP server\'s tools', async () => {
    const rows = await runDemo(6);
    expect(rows).toHaveLength(12);
    for (const row of rows) {
      expect(row.ok, JSON.stringify(row)).toBe(true);
      const server = row.user === 'A' ? 'warehouse' : 'crm';
      expect(row.mcpServer).toBe(server);
      expect(row.tools).toEqual(EXAMPLE_SERVERS[server].map((t) => t.name));
      expect(row.ran).toBe(row.user === 'A' ? 'Google/gemini-2.5-flash' : 'Anthropic/claude-3-5-haiku');
    }
  });
});
