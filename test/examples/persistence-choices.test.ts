/**
 * The example's choices table (examples/persistence): the row format keeps
 * credentials encrypted and bound to their user, and both engines (SQLite via
 * node:sqlite, PostgreSQL via pg) store, replace and delete rows.
 */
import { createSecretKey, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ContextLoadError, ContextStore, getUserModel, runAsUser, type UserConfig } from '../../src/index.js';
import { choicesPersistence, fromRow, toRow, type ChoiceRow, type ChoiceTable } from '../../examples/persistence/choices.js';
import { dropPostgresChoices, openPostgresChoices } from '../../examples/persistence/postgres.js';
import { openSqliteChoices } from '../../examples/persistence/sqlite.js';
import { PG_URL, requirePostgres, tablePrefix } from '../helpers/postgres.js';

const pgUp = await requirePostgres('the example choices table on PostgreSQL');
const key = createSecretKey(randomBytes(32));
const dir = mkdtempSync(join(tmpdir(), 'kuc-choices-'));
const prefixes: string[] = [];
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (pgUp) for (const p of prefixes) await dropPostgresChoices(PG_URL, p);
});

function config(apiKey: string): UserConfig {
  return {
    provider: 'OpenAI', model: 'gpt-4o-mini', mcpServerName: 'crm', mcpServerNames: null, mcpServerId: null, awsRegion: null,
    azureDeploymentDetails: null, friendliDetails: null, modelProviderInProfile: null,
    serverConfigs: { crm: { headers: { authorization: `Bearer ${apiKey}-mcp` } } },
    llmCredentials: { apiKey, provider: 'OpenAI' },
  };
}

/** A table in memory: the row format without an engine. */
function memoryTable(): ChoiceTable & { rows: Map<string, ChoiceRow> } {
  const rows = new Map<string, ChoiceRow>();
  return {
    rows, description: 'memory',
    read: async (u) => rows.get(u), write: async (u, r) => void rows.set(u, r), remove: async (u) => rows.delete(u), close: async () => {},
  };
}

describe('the choices row', () => {
  it('holds provider, model and MCP server in clear and every credential field encrypted, and reads back the same fields', () => {
    const user = randomUUID();
    const apiKey = `sk-${randomUUID()}`;
    const row = toRow(user, config(apiKey), 4, key);
    expect(row).toMatchObject({ provider: 'OpenAI', model: 'gpt-4o-mini', mcpServerName: 'crm', version: 4 });
    expect(JSON.stringify(row)).not.toContain(apiKey);
    expect(row.secrets).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(fromRow(user, row, key)).toEqual({
      provider: 'OpenAI', model: 'gpt-4o-mini', mcpServerName: 'crm',
      serverConfigs: { crm: { headers: { authorization: `Bearer ${apiKey}-mcp` } } }, llmCredentials: { apiKey, provider: 'OpenAI' },
    });
  });

  it('a row copied to another user, a tampered row or another key does not decrypt: that user gets 503 context_load_failed, never the key', async () => {
    const [alice, bob] = [randomUUID(), randomUUID()];
    const table = memoryTable();
    const aliceRow = toRow(alice, config('sk-alice'), 1, key);
    table.rows.set(bob, aliceRow);
    const store = new ContextStore({ persistence: choicesPersistence(table, key) });
    try {
      const error = await Promise.resolve(runAsUser(bob, () => getUserModel(), { store })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ContextLoadError);
      expect(JSON.stringify({ message: (error as Error).message })).not.toContain('sk-alice');
      const [v, iv, tag, data] = aliceRow.secrets!.split('.');
      const flipped = Buffer.from(data!, 'base64url');
      flipped[0] = flipped[0]! ^ 1;
      expect(() => fromRow(alice, { ...aliceRow, secrets: [v, iv, tag, flipped.toString('base64url')].join('.') }, key)).toThrow();
      expect(() => fromRow(alice, aliceRow, createSecretKey(randomBytes(32)))).toThrow();
      expect(fromRow(alice, aliceRow, key)['llmCredentials']).toEqual({ apiKey: 'sk-alice', provider: 'OpenAI' });
    } finally {
      await store.close();
    }
  });

  it('refuses a key that is not a 32-byte secret KeyObject and a table prefix that is not an identifier', async () => {
    expect(() => choicesPersistence(memoryTable(), createSecretKey(randomBytes(16)))).toThrow(/32-byte secret KeyObject/);
    await expect(openSqliteChoices(':memory:', 'x; DROP TABLE y')).rejects.toThrow(/TABLE_PREFIX must be letters/);
  });
});

const ENGINES = pgUp ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const);
describe.each(ENGINES)('the choices table on %s', (engine) => {
  it('inserts, replaces, reads and deletes a user’s row, other users untouched', async () => {
    const prefix = tablePrefix(engine);
    prefixes.push(prefix);
    const table = engine === 'postgres' ? await openPostgresChoices(PG_URL, prefix, { max: 2 }) : await openSqliteChoices(join(dir, `${prefix}.sqlite`), prefix);
    try {
      const [a, b] = [randomUUID(), randomUUID()];
      await table.write(a, toRow(a, config('sk-a1'), 1, key));
      await table.write(b, toRow(b, config('sk-b'), 1, key));
      await table.write(a, toRow(a, { ...config('sk-a2'), model: 'gpt-4.1' }, 2, key));
      const rowA = (await table.read(a))!;
      expect(rowA).toMatchObject({ model: 'gpt-4.1', version: 2 });
      expect(fromRow(a, rowA, key)['llmCredentials']).toEqual({ apiKey: 'sk-a2', provider: 'OpenAI' });
      expect(fromRow(b, (await table.read(b))!, key)['llmCredentials']).toEqual({ apiKey: 'sk-b', provider: 'OpenAI' });
      expect(await table.remove(a)).toBe(true);
      expect(await table.remove(a)).toBe(false);
      expect(await table.read(a)).toBeUndefined();
      expect(await table.read(b)).toBeDefined();
    } finally {
      await table.close();
    }
  });
});
