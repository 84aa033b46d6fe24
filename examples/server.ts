/**
 * Runs the example app.
 *
 *   PORT        port to listen on (default 3000)
 *   JWT_SECRET  HS256 secret, at least 32 bytes; without it one is generated
 *               and two ready-made tokens are printed
 */
import { randomUUID } from 'node:crypto';
import { createApp } from './app.js';
import { startExampleServers } from './mcp-servers.js';
import { generateSecret, mintToken } from './tokens.js';

const port = Number(process.env['PORT'] ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got "${process.env['PORT']}"`);
  process.exit(2);
}
const given = process.env['JWT_SECRET'];
const secret = given ?? generateSecret();
// Two example MCP servers users can pick with { "mcpServerName": "warehouse" | "crm" }.
const mcp = await startExampleServers();
let created;
try {
  created = createApp({
    secret,
    mcpServers: new Map([
      ['warehouse', mcp.warehouse.url],
      ['crm', mcp.crm.url],
    ]),
  });
} catch (err) {
  console.error(`cannot start: ${(err as Error).message}`);
  await mcp.close();
  process.exit(2);
}
const { app, store } = created;
app.on('error', (err: unknown) => console.error('request failed:', err));

const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  if (given === undefined) {
    console.log('JWT_SECRET not set: generated one for this run. Two ready-made tokens (valid 1 h):');
    for (const name of ['alice', 'bob']) {
      const user = randomUUID();
      console.log(`  ${name} (${user}): ${mintToken(secret, user)}`);
    }
  }
  console.log(`listening on http://127.0.0.1:${actual}`);
});

function shutdown(signal: string): void {
  console.log(`${signal}: closing`);
  server.close();
  store.close({ timeout: 5000 })
    .then(() => mcp.close())
    .then(() => process.exit(0), () => process.exit(1));
}
process.once('SIGINT', () => shutdown('SIGINT'));
process.once('SIGTERM', () => shutdown('SIGTERM'));
