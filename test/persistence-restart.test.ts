/**
 * A returning user keeps their choice: the example server (a real child
 * process, examples/server.ts) saves each user's provider, model, MCP server
 * and encrypted LLM key in its database; after the process is restarted and
 * the users are evicted from the shared cache, each user's next request runs
 * on their own saved choice (their own key reaches the LLM wire server).
 * Matrix: in-memory store and Redis × SQLite and PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChoiceTable } from '../examples/persistence/choices.js';
import { dropPostgresChoices, openPostgresChoices } from '../examples/persistence/postgres.js';
import { openSqliteChoices } from '../examples/persistence/sqlite.js';
import { keyFingerprint } from '../examples/providers/wire-server.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import { PG_URL, requirePostgres, tablePrefix } from './helpers/postgres.js';
import { REDIS_URL, adminClient, requireRedis } from './helpers/redis.js';

const redisUp = await requireRedis('restart tests on Redis');
const pgUp = await requirePostgres('restart tests on PostgreSQL');
const STORES = redisUp ? (['memory', 'redis'] as const) : (['memory'] as const);
const DATABASES = pgUp ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const);
const MATRIX = STORES.flatMap((store) => DATABASES.map((db) => [store, db] as const));

const dir = mkdtempSync(join(tmpdir(), 'kuc-restart-'));
const prefixes: string[] = [];
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (pgUp) for (const prefix of prefixes) await dropPostgresChoices(PG_URL, prefix);
});

/** Starts examples/server.ts; resolves its URL once it listens. */
async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], {
    env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; got: ${out}`)), 30_000);
    child.stdout!.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  return { child, url, output: () => out };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

interface Choice {
  user: string;
  token: string;
  provider: string;
  model: string;
  mcpServerName: string;
  apiKey: string;
}

const PICKS = [
  ['Google', 'gemini-2.5-flash'],
  ['Anthropic', 'claude-3-5-haiku'],
  ['OpenAI', 'gpt-4o-mini'],
] as const;

describe.each(MATRIX)('a returning user keeps their choice (%s store, %s)', (storeKind, dbKind) => {
  it('after a restart and an eviction, each user’s next request runs on their own saved provider, model, MCP server and key', async () => {
    const secret = generateSecret();
    const prefix = tablePrefix(`${storeKind}_${dbKind}`);
    prefixes.push(prefix);
    const sqlitePath = join(dir, `${prefix}.sqlite`);
    const env: Record<string, string> = {
      JWT_SECRET: secret,
      TABLE_PREFIX: prefix,
      ...(dbKind === 'postgres' ? { DATABASE_URL: PG_URL } : { SQLITE_PATH: sqlitePath, DATABASE_URL: '' }),
      ...(storeKind === 'redis' ? { REDIS_URL } : { REDIS_URL: '' }),
    };
    const users: Choice[] = Array.from({ length: 6 }, (_, i) => {
      const user = randomUUID();
      const [provider, model] = PICKS[i % PICKS.length]!;
      return { user, token: mintToken(secret, user), provider, model: `${model}`, mcpServerName: i % 2 === 0 ? 'warehouse' : 'crm', apiKey: `sk-${randomUUID()}` };
    });
    const newcomer = randomUUID();

    const first = await startServer(env);
    try {
      await Promise.all(users.map(async (u) => {
        const res = await fetch(`${first.url}/configure`, {
          method: 'POST',
          headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ provider: u.provider, model: u.model, mcpServerName: u.mcpServerName, llmCredentials: { apiKey: u.apiKey } }),
        });
        expect(res.status).toBe(200);
      }));
    } finally {
      await stop(first.child);
    }

    // Evicted from the shared cache too: with Redis the users' contexts go (as when their TTL expires).
    if (storeKind === 'redis') {
      const admin = adminClient();
      try {
        expect(await admin.del(...users.map((u) => `koa-user-context:ctx:${u.user}`))).toBe(users.length);
      } finally {
        admin.disconnect();
      }
    }

    const second = await startServer(env);
    try {
      const order = [...users].sort(() => Math.random() - 0.5);
      await Promise.all(order.map(async (u) => {
        const headers = { authorization: `Bearer ${u.token}`, 'content-type': 'application/json' };
        const seen = await fetch(`${second.url}/me/context`, { headers });
        expect(seen.status).toBe(200);
        const context = (await seen.json()) as Record<string, unknown>;
        expect(context).toMatchObject({ userUuid: u.user, provider: u.provider, model: u.model, mcpServerName: u.mcpServerName });
        expect(JSON.stringify(context)).not.toContain(u.apiKey);
        // Their own key, decrypted from the database, reaches the provider's wire format.
        const query = await fetch(`${second.url}/query`, { method: 'POST', headers, body: JSON.stringify({ prompt: 'hello again' }) });
        const answer = (await query.json()) as { provider: string; model: string; answer: string };
        expect(query.status).toBe(200);
        expect(answer).toMatchObject({ provider: u.provider, model: u.model });
        expect(answer.answer).toContain(`key:${keyFingerprint(u.apiKey)}`);
        for (const other of users) if (other !== u) expect(answer.answer).not.toContain(`key:${keyFingerprint(other.apiKey)}`);
      }));
      // Someone who never chose starts from the defaults.
      const fresh = await fetch(`${second.url}/me/context`, { headers: { authorization: `Bearer ${mintToken(secret, newcomer)}` } });
      expect(await fresh.json()).toMatchObject({ userUuid: newcomer, provider: null, model: null });
      expect(second.output()).toMatch(dbKind === 'postgres' ? /choices saved in PostgreSQL/ : /choices saved in SQLite/);
    } finally {
      await stop(second.child);
    }

    // The database holds every choice, and no key in clear.
    const table: ChoiceTable = dbKind === 'postgres' ? await openPostgresChoices(PG_URL, prefix, { max: 1 }) : await openSqliteChoices(sqlitePath, prefix);
    try {
      for (const u of users) {
        const row = await table.read(u.user);
        expect(row).toMatchObject({ provider: u.provider, model: u.model, mcpServerName: u.mcpServerName });
        expect(JSON.stringify(row)).not.toContain(u.apiKey);
        expect(row?.secrets).toMatch(/^v1\./);
      }
    } finally {
      await table.close();
    }
  }, 90_000);
});
