/**
 * Runs the example app.
 *
 *   PORT        port to listen on (default 3000)
 *   JWT_SECRET  HS256 secret, at least 32 bytes; without it one is generated
 *               and two ready-made tokens are printed
 *   REDIS_URL   e.g. redis://127.0.0.1:6379: share the users' contexts with
 *               every instance using the same Redis (RedisContextStore);
 *               without it contexts live in this process only
 *   CONTEXT_ENCRYPTION_KEY  32 bytes, base64 or hex: encrypts the credential
 *               fields written to Redis; by default derived from JWT_SECRET
 *               (HKDF-SHA256). Every instance needs the same key.
 *   DATABASE_URL, SQLITE_PATH, TABLE_PREFIX, CHOICES_ENCRYPTION_KEY: where
 *               users' choices are saved (PostgreSQL, else SQLite), so a
 *               returning user keeps them across evictions and restarts;
 *               see examples/persistence/index.ts. PERSISTENCE=off keeps
 *               them in the store only
 *   LOG_LEVEL   pino level of the JSON log on stdout (default info: failed and
 *               slow requests, and what the handlers log; debug: a line for
 *               every request, see accessLogLevel in examples/app.ts)
 *   LLM_BASE_URL  where the LLM calls go: a server speaking the providers'
 *               wire formats under /openai, /anthropic, /google, … (default:
 *               a local wire server started here, see examples/providers/)
 *
 * Users bring their own key: POST /configure { "provider": "OpenAI",
 * "model": "gpt-4o-mini", "llmCredentials": { "apiKey": "…" } }.
 */
import { hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { ContextStore } from '../src/index.js';
import type { McpServerDefinition } from '../src/mcp.js';
import { createApp, createLogger, createSharedStore } from './app.js';
import { choicesKey, openChoicesDatabase, type ChoicesDatabase } from './persistence/index.js';
import { memoryServer, startExampleServers } from './mcp-servers.js';
import { exampleLlmRegistry } from './providers/registry.js';
import { startWireServer, type WireServer } from './providers/wire-server.js';
import { retainTickObject } from './tick-object.js';
import { generateSecret, mintToken } from './tokens.js';

// Node 22/24: keeps process.nextTick's tick maps alive, so its inline caches stay on the fast path
// (up to 8 µs per request otherwise, in the processes that lose them); see examples/tick-object.ts.
retainTickObject();

const port = Number(process.env['PORT'] ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer from 0 to 65535, got "${process.env['PORT']}"`);
  process.exit(2);
}
const given = process.env['JWT_SECRET'] || undefined;
const secret = given ?? generateSecret();
// Example MCP servers users can pick with { "mcpServerName": "warehouse" | "crm" | "memory" }.
const mcp = await startExampleServers();
// …and "memory": the reference server-memory over stdio, one child process per user.
const memoryDir = mkdtempSync(join(tmpdir(), 'kuc-memory-'));
const mcpServers = new Map<string, McpServerDefinition>([
  ['warehouse', mcp.warehouse.url],
  ['crm', mcp.crm.url],
  ['memory', memoryServer(memoryDir)],
]);
// The LLM providers' wire formats, locally (or wherever LLM_BASE_URL points).
const llmBase = process.env['LLM_BASE_URL'] || undefined;
const wire: WireServer | undefined = llmBase === undefined ? await startWireServer({ tokenDelayMs: 20 }) : undefined;
const llms = exampleLlmRegistry(llmBase ?? wire!.url);
const redisUrl = process.env['REDIS_URL'];
let created;
let choices: ChoicesDatabase | undefined;
try {
  // Users' choices live in the database; the store is the cache in front of it.
  if (process.env['PERSISTENCE'] !== 'off') choices = await openChoicesDatabase(process.env, choicesKey(process.env, given));
  const persistence = choices === undefined ? {} : { persistence: choices.persistence };
  let store: ContextStore | undefined;
  if (redisUrl !== undefined && redisUrl !== '') {
    if (given === undefined) {
      console.warn('REDIS_URL is set but JWT_SECRET is not: tokens minted here are rejected by the other instances. Give every instance the same JWT_SECRET.');
    }
    const encryptionKey = process.env['CONTEXT_ENCRYPTION_KEY'] ??
      (given !== undefined ? Buffer.from(hkdfSync('sha256', given, 'koa-user-context', 'redis field encryption', 32)) : randomBytes(32));
    const shared = createSharedStore({ redis: redisUrl, encryptionKey, ...persistence }, mcpServers, llms);
    if (!(await shared.whenReady(5000))) {
      console.warn(`Redis at ${redisUrl} is not reachable yet: GET /ready answers 503 until it is; the store keeps reconnecting.`);
    }
    store = shared;
  }
  created = createApp({
    secret,
    llms,
    mcpServers,
    // Buffered (4 KB), asynchronous writes to stdout, as pino recommends for production: one write(2)
    // per few dozen lines instead of one per line; pino flushes it when the process exits.
    logger: createLogger({ level: process.env['LOG_LEVEL'] ?? 'info' }, pino.destination({ minLength: 4096, sync: false })),
    storeOptions: persistence,
    ...(store !== undefined ? { store } : {}),
  });
} catch (err) {
  console.error(`cannot start: ${(err as Error).message}`);
  await choices?.table.close();
  await mcp.close();
  await wire?.close();
  process.exit(2);
}
const { app, store, logger } = created;
app.on('error', (err: unknown) => logger.error({ err }, 'server error'));

const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  if (given === undefined) {
    console.log('JWT_SECRET not set: generated one for this run. Ready-made tokens (valid 1 h):');
    for (const name of ['alice', 'bob']) {
      const user = randomUUID();
      console.log(`  ${name} (${user}): ${mintToken(secret, user)}`);
    }
    const adminToken = mintToken(secret, randomUUID(), { role: 'admin' });
    console.log(`  admin: ${adminToken}`);
    console.log(`dashboard: http://127.0.0.1:${actual}/admin#token=${adminToken}`);
  }
  console.log(`LLM calls go to ${llmBase ?? `${wire!.url} (local wire server)`}`);
  console.log(`choices saved in ${choices?.table.description ?? 'this process only'}`);
  console.log(`listening on http://127.0.0.1:${actual} (metrics on /metrics${redisUrl ? `; contexts shared through ${redisUrl}` : ''})`);
});

function shutdown(signal: string): void {
  console.log(`${signal}: closing`);
  server.close();
  store.close({ timeout: 5000 })
    .then(() => choices?.table.close())
    .then(() => mcp.close())
    .then(() => wire?.close())
    .then(() => rmSync(memoryDir, { recursive: true, force: true }))
    .then(() => process.exit(0), () => process.exit(1));
}
process.once('SIGINT', () => shutdown('SIGINT'));
process.once('SIGTERM', () => shutdown('SIGTERM'));
