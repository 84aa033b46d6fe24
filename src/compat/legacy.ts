/**
 * The legacy process-wide globals, kept so code that was never migrated keeps
 * working *and* cannot leak across users:
 *
 * - inside a user scope (a request past the middleware, `runAsUser`, a
 *   profile override), reads and writes of `APP_CONFIG.CURRENT_*` and
 *   `APP_STATE.llm` / `mcp_client` / `server_configs` are routed to that
 *   user's context (the override's, under `runWithProfile`); each such call
 *   site is reported once with a `KUC_UNMIGRATED_GLOBAL` warning naming its
 *   `file:line`, so the migration can be finished call site by call site;
 * - outside any scope they read and write the default store's process-wide
 *   context, which is also what the helpers use outside a scope in
 *   `single-user` mode.
 *
 * Per-user writes are NOT copied to the process-wide values unless the store
 * was created with `mirrorToLegacyGlobals: true` (which warns once): copying
 * them would bring back last-writer-wins for every reader outside a scope.
 *
 * @module
 */
import type { ContextPatch, LlmInstance, McpClient } from '../context/types.js';
import { BUILTIN_FIELDS, BUILTIN_FIELD_NAMES, RESOURCES, RESOURCE_NAMES, accessorOf, isResourceName, type LegacyNames } from '../context/fields.js';
import { peekGeneration, writeUnawaited } from '../api/access.js';
import { als } from '../store/als.js';
import { callSiteOf, warnOnce } from '../warn.js';

/** The seed's `APP_CONFIG` runtime fields (derived from the field table). */
export type LegacyAppConfig = LegacyNames<'APP_CONFIG'>;

/** The seed's `APP_STATE` live objects and server configurations. */
export type LegacyAppState = LegacyNames<'APP_STATE'> & {
  llm: LlmInstance | null;
  mcp_client: McpClient | null;
};

/** Legacy `APP_CONFIG` name → context field, from the field table. */
export const LEGACY_CONFIG_FIELDS: Readonly<Record<keyof LegacyAppConfig, string>> = legacyNames('APP_CONFIG');

/** Legacy `APP_STATE` key → context field or resource, from the field table. */
export const LEGACY_STATE_FIELDS: Readonly<Record<keyof LegacyAppState, string>> = legacyNames('APP_STATE');

/** Warning code of an unmigrated legacy global used inside a user scope. */
export const UNMIGRATED_GLOBAL_WARNING = 'KUC_UNMIGRATED_GLOBAL';

function legacyNames<T>(object: 'APP_CONFIG' | 'APP_STATE'): Readonly<Record<keyof T, string>> {
  const out: Record<string, string> = {};
  for (const name of BUILTIN_FIELD_NAMES) {
    const legacy = BUILTIN_FIELDS[name].legacy;
    if (legacy?.object === object) out[legacy.name] = name;
  }
  if (object === 'APP_STATE') for (const name of RESOURCE_NAMES) out[RESOURCES[name].legacy] = name;
  return Object.freeze(out) as Record<keyof T, string>;
}

function report(kind: 'read' | 'write', label: string, legacy: string, field: string, accessor: Function): void {
  const site = callSiteOf(accessor);
  const helper = `${kind === 'read' ? 'get' : 'set'}${accessorOf(field)}`;
  warnOnce(
    UNMIGRATED_GLOBAL_WARNING,
    `${label}.${legacy} ${kind === 'read' ? 'read' : 'written'} inside a user scope at ${site} was routed to that user's ` +
      `context. Migrate this call site to ${helper}()${kind === 'write' ? ' (and await it)' : ''}.`,
    `${UNMIGRATED_GLOBAL_WARNING}|${kind}|${label}.${legacy}|${site}`,
  );
}

function legacyObject<T extends object>(map: Readonly<Record<string, string>>, label: string): T {
  const target = Object.create(null) as T;
  for (const [legacy, field] of Object.entries(map)) {
    const get = function legacyGet(): unknown {
      if (als.getStore() !== undefined) report('read', label, legacy, field, get);
      // The helpers' read path: the scope's snapshot while it is open, the
      // user's current configuration after it ended, the process-wide one outside.
      const gen = peekGeneration(true)!;
      if (isResourceName(field)) return gen.owner.resource(gen, field);
      return (gen.config as unknown as Record<string, unknown>)[field];
    };
    const set = function legacySet(value: unknown): void {
      if (als.getStore() !== undefined) report('write', label, legacy, field, set);
      writeUnawaited({ [field]: value } as ContextPatch, `${label}.${legacy}`);
    };
    Object.defineProperty(target, legacy, { enumerable: true, get, set });
  }
  Object.defineProperty(target, Symbol.toStringTag, { value: label });
  return Object.seal(target);
}

/**
 * The seed's `APP_CONFIG`: the current user's provider/model/… inside a user
 * scope (reported once per call site), the process-wide ones outside.
 * New code uses `getUserProvider()` and friends.
 */
export const APP_CONFIG: LegacyAppConfig = legacyObject<LegacyAppConfig>(LEGACY_CONFIG_FIELDS, 'APP_CONFIG');

/** The seed's `APP_STATE.llm` / `mcp_client` / `server_configs`, routed like {@link APP_CONFIG}. */
export const APP_STATE: LegacyAppState = legacyObject<LegacyAppState>(LEGACY_STATE_FIELDS, 'APP_STATE');
