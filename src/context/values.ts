/**
 * Configuration values: deep-frozen plain data, patches split into fields and
 * live resources, structural equality, and merging a patch into a
 * configuration.
 *
 * @module
 */
import { InvalidContextValueError } from '../errors.js';
import { isResourceName } from './fields.js';
import type { ResourceName, UserConfig } from './types.js';

const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype', 'userUuid', 'lastAccess', 'version']);

/** Keys a configuration can never hold: prototype keys and the view's own keys (`userUuid`, `lastAccess`, `version`). */
export function isReservedKey(key: string): boolean {
  return RESERVED_KEYS.has(key);
}

/**
 * Deep-freezes a structured clone of a plain-data value, so a committed
 * configuration can never be changed behind the store's back nor share
 * mutable state with the caller or with another user.
 */
export function freezeValue(field: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
      throw new InvalidContextValueError(
        `Field "${field}" must be plain data (string, number, boolean, null, array or plain object), got a ${typeof value}. ` +
          'Live objects belong in llmInstance / mcpClient or a resource factory.',
      );
    }
    return value;
  }
  let copy: unknown;
  try {
    copy = structuredClone(value);
  } catch (cause) {
    throw new InvalidContextValueError(
      `Field "${field}" must be plain data that structuredClone() can copy; it holds a function or a live object.`,
      { cause },
    );
  }
  return deepFreeze(copy);
}

function deepFreeze(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Splits a patch into frozen config fields and resources; rejects unsafe keys. */
export function splitPatch(patch: unknown): {
  fields: Map<string, unknown>;
  resources: Map<ResourceName, unknown>;
} {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new InvalidContextValueError(
      'configureUser() takes a plain object such as { provider: "Google", model: "gemini-2.5-flash" }.',
    );
  }
  const fields = new Map<string, unknown>();
  const resources = new Map<ResourceName, unknown>();
  for (const key of Object.keys(patch)) {
    const value = (patch as Record<string, unknown>)[key];
    if (RESERVED_KEYS.has(key)) {
      throw new InvalidContextValueError(`"${key}" cannot be set on a user context.`);
    }
    if (value === undefined) continue;
    if (isResourceName(key)) resources.set(key, value);
    else fields.set(key, freezeValue(key, value));
  }
  return { fields, resources };
}

/** Structural equality for frozen plain data. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * `base` with `fields` applied, frozen, and the fields whose value differs
 * from `before` (including fields `before` has and the result lacks).
 */
export function mergeConfig(
  base: UserConfig,
  fields: ReadonlyMap<string, unknown>,
  before: UserConfig,
): { config: UserConfig; changed: Set<string> } {
  const config: Record<string, unknown> = { ...base };
  for (const [key, value] of fields) config[key] = value;
  const previous = before as unknown as Record<string, unknown>;
  const changed = new Set<string>();
  for (const key of Object.keys(config)) if (!sameValue(previous[key], config[key])) changed.add(key);
  for (const key of Object.keys(previous)) if (!(key in config)) changed.add(key);
  return { config: Object.freeze(config) as UserConfig, changed };
}
