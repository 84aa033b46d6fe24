/**
 * The choices table in SQLite, embedded in the process: `node:sqlite`
 * (Node ≥ 22.13, no flag), one file. Its calls are synchronous and short
 * (one row by primary key); `busy_timeout` lets several processes share the
 * file.
 *
 * @module
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { checkTablePrefix, type ChoiceRow, type ChoiceTable } from './choices.js';

type DatabaseSync = import('node:sqlite').DatabaseSync;

/** Whether this Node has node:sqlite. */
export async function sqliteAvailable(): Promise<boolean> {
  return (await loadSqlite()) !== undefined;
}

/** node:sqlite, loaded on first use: on a Node without it (before 22.13) the example runs without a database. */
async function loadSqlite(): Promise<(new (path: string) => DatabaseSync) | undefined> {
  try {
    return (await import('node:sqlite')).DatabaseSync;
  } catch {
    return undefined;
  }
}

/** Opens (and creates) `<prefix>user_choices` in the SQLite file at `path`. */
export async function openSqliteChoices(path: string, prefix: string): Promise<ChoiceTable> {
  const DatabaseSync = await loadSqlite();
  if (DatabaseSync === undefined) {
    throw new Error(`SQLite needs node:sqlite (Node >= 22.13), this is Node ${process.versions.node}; set DATABASE_URL to use PostgreSQL instead.`);
  }
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  const table = `${checkTablePrefix(prefix)}user_choices`;
  db.exec('PRAGMA busy_timeout = 5000');
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(`CREATE TABLE IF NOT EXISTS ${table} (
    user_uuid TEXT PRIMARY KEY,
    provider TEXT,
    model TEXT,
    mcp_server_name TEXT,
    settings TEXT NOT NULL,
    secrets TEXT,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL
  )`);
  const select = db.prepare(`SELECT provider, model, mcp_server_name, settings, secrets, version FROM ${table} WHERE user_uuid = ?`);
  const upsert = db.prepare(`INSERT INTO ${table} (user_uuid, provider, model, mcp_server_name, settings, secrets, version, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (user_uuid) DO UPDATE SET provider = excluded.provider, model = excluded.model,
      mcp_server_name = excluded.mcp_server_name, settings = excluded.settings, secrets = excluded.secrets,
      version = excluded.version, updated_at = excluded.updated_at`);
  const remove = db.prepare(`DELETE FROM ${table} WHERE user_uuid = ?`);
  return {
    description: `SQLite ${path} (table ${table})`,
    async read(userUuid) {
      const row = select.get(userUuid);
      if (row === undefined) return undefined;
      return {
        provider: row['provider'] as string | null,
        model: row['model'] as string | null,
        mcpServerName: row['mcp_server_name'] as string | null,
        settings: row['settings'] as string,
        secrets: row['secrets'] as string | null,
        version: Number(row['version']),
      } satisfies ChoiceRow;
    },
    async write(userUuid, row) {
      upsert.run(userUuid, row.provider, row.model, row.mcpServerName, row.settings, row.secrets, row.version, new Date().toISOString());
    },
    async remove(userUuid) {
      return Number(remove.run(userUuid).changes) > 0;
    },
    async close() {
      db.close();
    },
  };
}
