/**
 * Redaction of contexts for every view that leaves the process (admin API,
 * dashboard, logs, events, error messages). Built-in fields are redacted by
 * what the field table says they hold; on top of that, one name rule
 * ({@link isCredentialName}) redacts any key that names a credential wherever
 * it appears (app fields, `serverConfigs`, free-form data, nested), and one
 * text rule ({@link redactText}) masks credentials inside strings: the
 * password of a connection string (`postgres://app:[redacted]@db/x`), a
 * credential in a URL's query (`?api_key=[redacted]`), `name=value`
 * assignments (`--password=[redacted]`, `PGPASSWORD=[redacted]`) and
 * `Bearer …` / `Basic …` values.
 *
 * @module
 */
import { BUILTIN_FIELDS, isResourceName, type FieldSpec } from './fields.js';
import type { UserRuntimeContext } from './types.js';

/** What a redacted value is replaced with. */
export const REDACTED = '[redacted]';

/**
 * Stems that name a credential anywhere in a name, compared without case and
 * separators (`api_key`, `API-KEY`, `x-api-key`, `apiKey` → `apikey`).
 */
const CREDENTIAL_STEM = /apikey|accesskey|privatekey|secretkey|token|secret|passw|passphrase|credential|authoriz|bearer|cookie/;

/**
 * Words that name a credential as the last word of a name (`key`,
 * `encryptionKey`, `GH_PAT`, `db.pwd`, `basicAuth`), but not inside one
 * (`keyId`, `compat`, `passThrough`, `authority`).
 */
const CREDENTIAL_LAST_WORD: ReadonlySet<string> = new Set(['key', 'keys', 'pat', 'pwd', 'pass', 'auth', 'jwt', 'dsn']);

/**
 * Whether a key (a field, a property at any depth, a header, a query
 * parameter, an environment variable) names a credential: the one name rule
 * of every redaction. Case and format do not matter: `apiKey`, `api_key`,
 * `API-KEY`, `x-api-key`, `Authorization`, `clientSecret`, `secretAccessKey`,
 * `privateKey`, `accessKey`, `bearer`, `password`, `token`, `key`, `pat`.
 */
export function isCredentialName(name: string): boolean {
  // Bounded in count and length: names can come from users (keys of serverConfigs, app fields); the common ones come back at once.
  if (name.length > CREDENTIAL_NAME_KEPT_LENGTH) return matchesCredentialName(name);
  let known = credentialNames.get(name);
  if (known === undefined) {
    known = matchesCredentialName(name);
    if (credentialNames.size >= CREDENTIAL_NAMES_KEPT) credentialNames.clear();
    credentialNames.set(name, known);
  }
  return known;
}

/**
 * The answers of the name rule so far (a name, never a value): every view of a
 * context asks it about the same few dozen keys, on every request that shows one.
 */
const credentialNames = new Map<string, boolean>();
const CREDENTIAL_NAMES_KEPT = 1024;
const CREDENTIAL_NAME_KEPT_LENGTH = 64;

function matchesCredentialName(name: string): boolean {
  const lower = name.toLowerCase();
  if (CREDENTIAL_STEM.test(lower.replace(/[^a-z0-9]/g, ''))) return true;
  // The last word: split on separators and on camelCase humps.
  const words = name.split(/[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])/);
  let last = words.pop();
  while (last === '' && words.length > 0) last = words.pop();
  return last !== undefined && CREDENTIAL_LAST_WORD.has(last.toLowerCase());
}

/** `scheme://user:password@` — the password of a URL or connection string. */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:)[^\s/?#@]+@/gi;
/** `?name=value` / `&name=value` / `;name=value` in a URL or connection string. */
const QUERY_PARAM = /([?&;])([^=&;#\s]+)=([^&;#\s]*)/g;
/** An HTTP credential as a value: `Bearer <token>`, `Basic <base64>`. */
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/gi;
/** What any of the text rules needs to be present: `://`, `=`, or an HTTP credential scheme. */
const MAY_HOLD_CREDENTIAL = /:\/\/|=|bearer|basic/i;
/** A whole string `name=value`, `--name=value` or `-name=value` (an argument, an env assignment). */
const ASSIGNMENT = /^(-{0,2}[A-Za-z_][\w.-]*)=/;

/**
 * `text` with the credentials inside it masked: URL passwords, query
 * parameters and `name=value` assignments whose name is a credential, and
 * `Bearer` / `Basic` credentials.
 * Text without any is returned as it is.
 */
export function redactText(text: string): string {
  // One scan for what every rule below needs: most values (names, models, ids) have none of it.
  if (!MAY_HOLD_CREDENTIAL.test(text)) return text;
  let out = text;
  if (out.includes('://')) out = out.replace(URL_PASSWORD, `$1${REDACTED}@`);
  if (/bearer|basic/i.test(out)) out = out.replace(AUTH_SCHEME, `$1 ${REDACTED}`);
  if (out.includes('=')) {
    out = out.replace(QUERY_PARAM, (all, sep: string, name: string) => (isCredentialName(decodeName(name)) ? `${sep}${name}=${REDACTED}` : all));
    const assignment = ASSIGNMENT.exec(out);
    if (assignment !== null && isCredentialName(assignment[1]!.replace(/^-+/, ''))) out = `${assignment[1]}=${REDACTED}`;
  }
  return out;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/** Options of {@link redactContext}. */
export interface RedactOptions {
  /**
   * Further keys to redact at any depth, on top of every name
   * {@link isCredentialName} matches (e.g. `['tenantPin']`).
   * @default []
   */
  secretKeys?: readonly string[];
  /**
   * App fields whose whole value is a credential.
   * @default []
   */
  secretFields?: readonly string[];
}

/**
 * A copy of a context with its credentials replaced by `"[redacted]"` and live
 * resources reduced to `"[live]"` (or `null`): safe to send to an admin, log
 * or serialise.
 */
export function redactContext(context: UserRuntimeContext, options: RedactOptions = {}): Record<string, unknown> {
  const extraKeys = options.secretKeys?.length ? new Set(options.secretKeys) : undefined;
  const wholeFields = options.secretFields?.length ? new Set(options.secretFields) : undefined;
  const isSecretKey = extraKeys === undefined ? isCredentialName : (key: string): boolean => isCredentialName(key) || extraKeys.has(key);
  // A copy of the whole context at once (fast for a view's fixed shape), then only the values that change are replaced.
  const out: Record<string, unknown> = { ...context };
  for (const key of Object.keys(out)) {
    const value = out[key];
    if (value == null) continue;
    if (isResourceName(key)) out[key] = '[live]';
    else if (key === 'lastAccess') out[key] = (value as Date).toISOString();
    else if (wholeFields?.has(key)) out[key] = REDACTED;
    else {
      const shown = redactField(key, value, isSecretKey);
      if (shown !== value) out[key] = shown;
    }
  }
  return out;
}

/** One field's value, redacted by its spec (built-in fields), by key name and by {@link redactText}. */
export function redactField(field: string, value: unknown, isSecretKey: (key: string) => boolean = isCredentialName): unknown {
  if (value == null) return value;
  const spec = BUILTIN_SECRETS.get(field);
  if (spec === 'whole' || isSecretKey(field)) return REDACTED;
  if (spec instanceof Set) return redactValue(value, (k) => spec.has(k) || isSecretKey(k));
  return redactValue(value, isSecretKey);
}

/** Each built-in field's secret spec, its keys as a set: read on every view of a context. */
const BUILTIN_SECRETS: ReadonlyMap<string, 'whole' | 'pattern' | ReadonlySet<string>> = new Map(
  Object.entries(BUILTIN_FIELDS).flatMap(([field, { secret }]: [string, FieldSpec]) =>
    secret === null ? [] : [[field, typeof secret === 'object' ? new Set(secret.keys) : secret] as const]),
);

function redactValue(value: unknown, isSecretKey: (key: string) => boolean): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, isSecretKey));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) {
    const v: unknown = (value as Record<string, unknown>)[k];
    const shown = v != null && isSecretKey(k) ? REDACTED : redactValue(v, isSecretKey);
    // An own "__proto__" key (from JSON) stays a key, not the copy's prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: shown, writable: true, enumerable: true, configurable: true });
    else out[k] = shown;
  }
  return out;
}
