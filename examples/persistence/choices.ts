/**
 * The example's database of users' choices, behind the context store: the
 * store is the cache, this table is the source of truth. Each user's row
 * holds their provider, model and MCP server as columns, the other plain
 * fields as JSON, and every field that may hold a credential (their LLM key,
 * MCP server headers…: SECRET_FIELD_NAMES) encrypted with AES-256-GCM under
 * a KeyObject, bound to the user (a row's secrets copied to another user do
 * not decrypt: that user gets a 503, never someone else's key).
 *
 * Two engines, one row format: SQLite (node:sqlite, embedded, the default)
 * and PostgreSQL (pg, when DATABASE_URL is set).
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { SECRET_FIELD_NAMES, type ContextPersistence, type UserConfig } from '../../src/index.js';

/** One user's saved choices, as stored. */
export interface ChoiceRow {
  provider: string | null;
  model: string | null;
  mcpServerName: string | null;
  /** JSON of the other plain fields. */
  settings: string;
  /** `v1.<iv>.<tag>.<ciphertext>` (base64url) of the JSON of the secret fields; `null` when there are none. */
  secrets: string | null;
  version: number;
}

/** What each engine provides: one table of {@link ChoiceRow} by user id. */
export interface ChoiceTable {
  /** Which engine and table, for the startup line. */
  readonly description: string;
  read(userUuid: string): Promise<ChoiceRow | undefined>;
  /** Inserts or replaces the user's row. */
  write(userUuid: string, row: ChoiceRow): Promise<void>;
  /** Deletes the user's row; resolves whether there was one. */
  remove(userUuid: string): Promise<boolean>;
  close(): Promise<void>;
}

const COLUMNS = new Set(['provider', 'model', 'mcpServerName']);
const SECRETS: ReadonlySet<string> = new Set(SECRET_FIELD_NAMES);

/** A table name prefix that is safe to put in SQL (letters, digits, underscores). */
export function checkTablePrefix(prefix: string): string {
  if (!/^[a-z_][a-z0-9_]{0,40}$/i.test(prefix)) {
    throw new TypeError(`TABLE_PREFIX must be letters, digits and underscores (at most 41), got "${prefix}"`);
  }
  return prefix;
}

/** The row of a configuration: nulls and empty objects (the defaults) are not stored; secrets are encrypted. */
export function toRow(userUuid: string, config: UserConfig, version: number, key: KeyObject): ChoiceRow {
  const settings: Record<string, unknown> = {};
  const secrets: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(config)) {
    if (COLUMNS.has(name) || value === null || (typeof value === 'object' && Object.keys(value).length === 0)) continue;
    (SECRETS.has(name) ? secrets : settings)[name] = value;
  }
  return {
    provider: config.provider,
    model: config.model,
    mcpServerName: config.mcpServerName,
    settings: JSON.stringify(settings),
    secrets: Object.keys(secrets).length === 0 ? null : seal(key, userUuid, JSON.stringify(secrets)),
    version,
  };
}

/** The fields of a row (secrets decrypted); throws when the secrets do not decrypt for this user. */
export function fromRow(userUuid: string, row: ChoiceRow, key: KeyObject): Record<string, unknown> {
  const fields: Record<string, unknown> = { ...(JSON.parse(row.settings) as Record<string, unknown>) };
  if (row.provider !== null) fields['provider'] = row.provider;
  if (row.model !== null) fields['model'] = row.model;
  if (row.mcpServerName !== null) fields['mcpServerName'] = row.mcpServerName;
  if (row.secrets !== null) Object.assign(fields, JSON.parse(open(key, userUuid, row.secrets)) as Record<string, unknown>);
  return fields;
}

/** The store's `persistence` option on a table: load a row, save every acknowledged commit, delete. */
export function choicesPersistence(table: ChoiceTable, key: KeyObject): ContextPersistence {
  if (key.type !== 'secret' || key.symmetricKeySize !== 32) throw new TypeError('the choices encryption key must be a 32-byte secret KeyObject');
  return {
    load: async (userUuid) => {
      const row = await table.read(userUuid);
      return row === undefined ? null : fromRow(userUuid, row, key);
    },
    onCommit: (userUuid, context, { version }) => table.write(userUuid, toRow(userUuid, context, version, key)),
    onDelete: (userUuid) => table.remove(userUuid),
  };
}

function aad(userUuid: string): Buffer {
  return Buffer.from(`koa-user-context choices ${userUuid}`);
}

function seal(key: KeyObject, userUuid: string, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(aad(userUuid));
  const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join('.');
}

function open(key: KeyObject, userUuid: string, sealed: string): string {
  const [version, iv, tag, data] = sealed.split('.');
  if (version !== 'v1' || iv === undefined || tag === undefined || data === undefined) throw new Error('unknown secrets format');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url')).setAAD(aad(userUuid));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
}
