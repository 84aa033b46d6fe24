/**
 * Real PostgreSQL for the tests: the server at PG_TEST_URL (default
 * postgres://postgres@127.0.0.1:5432/test, trust auth). In CI a missing
 * PostgreSQL fails the run (.ci/run starts it); outside CI the PostgreSQL
 * tests are skipped with a message saying how to run them.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { IN_CI } from './redis.js';

export const PG_URL = process.env['PG_TEST_URL'] || 'postgres://postgres@127.0.0.1:5432/test';

/** A table prefix unique to this test run (letters, digits, underscores), so parallel runs never collide. */
export function tablePrefix(label: string): string {
  return `kuc_t_${label}_${randomUUID().replace(/-/g, '').slice(0, 12)}_`;
}

/** Whether PostgreSQL answers. In CI, throws instead of returning false: a PostgreSQL test must fail, not skip. */
export async function requirePostgres(what: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (error) {
    if (IN_CI) throw new Error(`CI: ${what} need PostgreSQL at ${PG_URL} (${(error as Error).message}). .ci/run starts it; check it.`);
    console.warn(`\n[skip] ${what}: no PostgreSQL at ${PG_URL}. Start one or set PG_TEST_URL to run them.\n`);
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
