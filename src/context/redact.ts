/**
 * Redaction of contexts for every view that leaves the process (admin API,
 * dashboard, logs, events, error messages). Built-in fields are redacted by
 * what the field table says they hold; on top of that, any key that looks
 * like a credential is redacted wherever it appears (defence in depth for
 * app fields and free-form data).
 *
 * @module
 */
import { BUILTIN_FIELDS, isResourceName, type BuiltinField, type FieldSpec, type SecretSpec } from './fields.js';
import type { UserRuntimeContext } from './types.js';

/** What a redacted value is replaced with. */
export const REDACTED = '[redacted]';

const SECRET_KEY = /(api[-_]?key|token|secret|password|credential|authorization)/i;

/** Options of {@link redactContext}. */
export interface RedactOptions {
  /**
   * Further keys to redact at any depth (e.g. `['key']`).
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
  const isSecretKey = (key: string): boolean => SECRET_KEY.test(key) || (extraKeys?.has(key) ?? false);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (isResourceName(key)) out[key] = value != null ? '[live]' : null;
    else if (key === 'lastAccess') out[key] = (value as Date).toISOString();
    else if (wholeFields?.has(key)) out[key] = value == null ? value : REDACTED;
    else out[key] = redactField(key, value, isSecretKey);
  }
  return out;
}

/** One field's value, redacted by its spec (built-in fields) and by key pattern. */
export function redactField(field: string, value: unknown, isSecretKey: (key: string) => boolean = (k) => SECRET_KEY.test(k)): unknown {
  const spec: SecretSpec | null = Object.prototype.hasOwnProperty.call(BUILTIN_FIELDS, field)
    ? (BUILTIN_FIELDS[field as BuiltinField] as FieldSpec).secret
    : null;
  if (value == null) return value;
  if (spec === 'whole' || isSecretKey(field)) return REDACTED;
  if (spec !== null && typeof spec === 'object') {
    const keys = new Set(spec.keys);
    return redactValue(value, (k) => keys.has(k) || isSecretKey(k));
  }
  return redactValue(value, isSecretKey);
}

function redactValue(value: unknown, isSecretKey: (key: string) => boolean): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, isSecretKey));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = v != null && isSecretKey(k) ? REDACTED : redactValue(v, isSecretKey);
  return out;
}
