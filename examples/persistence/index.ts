/**
 * Which database the example server keeps users' choices in, from its
 * environment:
 *
 *   DATABASE_URL    postgres://…: PostgreSQL (pg)
 *   SQLITE_PATH     otherwise SQLite (node:sqlite) in this file
 *                   (default: <tmpdir>/koa-user-context-example/choices.sqlite)
 *   TABLE_PREFIX    prefix of the table name (default "kuc_"): instances
 *                   sharing choices use the same one
 *   CHOICES_ENCRYPTION_KEY  32 bytes, base64 or hex: encrypts the fields that
 *                   may hold credentials; by default derived from JWT_SECRET
 *                   (HKDF-SHA256). Without either, a key for this run only
 *                   (saved keys cannot be read after a restart).
 *
 * @module
 */
import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContextPersistence } from '../../src/index.js';
import { choicesPersistence, type ChoiceTable } from './choices.js';
import { openPostgresChoices } from './postgres.js';
import { openSqliteChoices, sqliteAvailable } from './sqlite.js';

export interface ChoicesDatabase {
  readonly table: ChoiceTable;
  /** The store's `persistence` option. */
  readonly persistence: ContextPersistence;
}

/** The encryption key of the secret fields, from CHOICES_ENCRYPTION_KEY or derived from the JWT secret. */
export function choicesKey(env: NodeJS.ProcessEnv, jwtSecret: string | undefined): KeyObject {
  const given = env['CHOICES_ENCRYPTION_KEY'];
  if (given !== undefined && given !== '') {
    const raw = /^[0-9a-f]{64}$/i.test(given) ? Buffer.from(given, 'hex') : Buffer.from(given, 'base64');
    if (raw.length !== 32) throw new TypeError('CHOICES_ENCRYPTION_KEY must be 32 bytes, base64 or hex');
    return createSecretKey(raw);
  }
  if (jwtSecret !== undefined) return createSecretKey(Buffer.from(hkdfSync('sha256', jwtSecret, 'koa-user-context', 'database field encryption', 32)));
  console.warn('Neither CHOICES_ENCRYPTION_KEY nor JWT_SECRET is set: saved credentials are encrypted with a key for this run only.');
  return createSecretKey(randomBytes(32));
}

/**
 * Opens the database the environment names (PostgreSQL with DATABASE_URL,
 * else SQLite); `undefined`, with a warning, on a Node without node:sqlite.
 */
export async function openChoicesDatabase(env: NodeJS.ProcessEnv, key: KeyObject): Promise<ChoicesDatabase | undefined> {
  const prefix = env['TABLE_PREFIX'] || 'kuc_';
  const url = env['DATABASE_URL'];
  if ((url === undefined || url === '') && !(await sqliteAvailable())) {
    console.warn(`Node ${process.versions.node} has no node:sqlite (Node >= 22.13): choices are kept in this process only. Set DATABASE_URL for PostgreSQL.`);
    return undefined;
  }
  const table = url !== undefined && url !== ''
    ? await openPostgresChoices(url, prefix)
    : await openSqliteChoices(env['SQLITE_PATH'] || join(tmpdir(), 'koa-user-context-example', 'choices.sqlite'), prefix);
  return { table, persistence: choicesPersistence(table, key) };
}
