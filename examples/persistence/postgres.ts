/**
 * The choices table in PostgreSQL (pg), when DATABASE_URL is set: a pool of
 * connections, one statement per call, the row upserted in one step.
 *
 * @module
 */
import pg from 'pg';
import { checkTablePrefix, type ChoiceRow, type ChoiceTable } from './choices.js';

/** Opens a pool on `url` and creates `<prefix>user_choices` if needed. */
export async function openPostgresChoices(url: string, prefix: string, options: { max?: number } = {}): Promise<ChoiceTable> {
  const table = `${checkTablePrefix(prefix)}user_choices`;
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: 3_000, statement_timeout: 3_000 });
  // An idle client losing its connection must not crash the process; the next query gets a new one.
  pool.on('error', () => {});
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (
      user_uuid TEXT PRIMARY KEY,
      provider TEXT,
      model TEXT,
      mcp_server_name TEXT,
      settings JSONB NOT NULL,
      secrets TEXT,
      version INTEGER NOT NULL,
      updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
  } catch (error) {
    await pool.end();
    throw error;
  }
  const where = new URL(url);
  return {
    // Never the password: host, port and database only.
    description: `PostgreSQL ${where.hostname}:${where.port || 5432}${where.pathname} (table ${table})`,
    async read(userUuid) {
      const { rows } = await pool.query<{ provider: string | null; model: string | null; mcp_server_name: string | null; settings: unknown; secrets: string | null; version: number }>(
        `SELECT provider, model, mcp_server_name, settings, secrets, version FROM ${table} WHERE user_uuid = $1`,
        [userUuid],
      );
      const row = rows[0];
      if (row === undefined) return undefined;
      return {
        provider: row.provider,
        model: row.model,
        mcpServerName: row.mcp_server_name,
        settings: JSON.stringify(row.settings),
        secrets: row.secrets,
        version: row.version,
      } satisfies ChoiceRow;
    },
    async write(userUuid, row) {
      await pool.query(
        `INSERT INTO ${table} (user_uuid, provider, model, mcp_server_name, settings, secrets, version, updated_at)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, now())
         ON CONFLICT (user_uuid) DO UPDATE SET provider = EXCLUDED.provider, model = EXCLUDED.model,
           mcp_server_name = EXCLUDED.mcp_server_name, settings = EXCLUDED.settings, secrets = EXCLUDED.secrets,
           version = EXCLUDED.version, updated_at = now()`,
        [userUuid, row.provider, row.model, row.mcpServerName, row.settings, row.secrets, row.version],
      );
    },
    async remove(userUuid) {
      const { rowCount } = await pool.query(`DELETE FROM ${table} WHERE user_uuid = $1`, [userUuid]);
      return (rowCount ?? 0) > 0;
    },
    async close() {
      await pool.end();
    },
  };
}

/** Drops the tables of a prefix (tests clean up after themselves). */
export async function dropPostgresChoices(url: string, prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${checkTablePrefix(prefix)}user_choices`);
  } finally {
    await client.end();
  }
}
