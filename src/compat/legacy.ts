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
import type { AzureDeploymentDetails, ContextPatch, FriendliDetails, LlmInstance, McpClient } from '../context/values.js';
import { als } from '../store/als.js';
import { getDefaultStore } from '../store/default-store.js';
import { callSiteOf, warnOnce } from '../warn.js';

/** The seed's `APP_CONFIG` runtime fields. */
export interface LegacyAppConfig {
  CURRENT_PROVIDER: string | null;
  CURRENT_MODEL: string | null;
  CURRENT_MCP_SERVER_NAME: string | null;
  CURRENT_MCP_SERVER_ID: string | null;
  CURRENT_AWS_REGION: string | null;
  CURRENT_AZURE_DEPLOYMENT_DETAILS: Readonly<AzureDeploymentDetails> | null;
  CURRENT_FRIENDLI_DETAILS: Readonly<FriendliDetails> | null;
  CURRENT_MODEL_PROVIDER_IN_PROFILE: string | null;
}

/** The seed's `APP_STATE` live objects. */
export interface LegacyAppState {
  llm: LlmInstance | null;
  mcp_client: McpClient | null;
  server_configs: Readonly<Record<string, unknown>>;
}

/** Legacy name → context field. */
export const LEGACY_CONFIG_FIELDS = Object.freeze({
  CURRENT_PROVIDER: 'provider',
  CURRENT_MODEL: 'model',
  CURRENT_MCP_SERVER_NAME: 'mcpServerName',
  CURRENT_MCP_SERVER_ID: 'mcpServerId',
  CURRENT_AWS_REGION: 'awsRegion',
  CURRENT_AZURE_DEPLOYMENT_DETAILS: 'azureDeploymentDetails',
  CURRENT_FRIENDLI_DETAILS: 'friendliDetails',
  CURRENT_MODEL_PROVIDER_IN_PROFILE: 'modelProviderInProfile',
} as const);

/** Legacy `APP_STATE` key → context field or resource. */
export const LEGACY_STATE_FIELDS = Object.freeze({
  llm: 'llmInstance',
  mcp_client: 'mcpClient',
  server_configs: 'serverConfigs',
} as const);

/** Warning code of an unmigrated legacy global used inside a user scope. */
export const UNMIGRATED_GLOBAL_WARNING = 'KUC_UNMIGRATED_GLOBAL';

const HELPER_OF: Readonly<Record<string, string>> = {
  provider: 'UserProvider',
  model: 'UserModel',
  mcpServerName: 'UserMcpServerName',
  mcpServerId: 'UserMcpServerId',
  awsRegion: 'UserAwsRegion',
  azureDeploymentDetails: 'UserAzureDeploymentDetails',
  friendliDetails: 'UserFriendliDetails',
  modelProviderInProfile: 'UserModelProviderInProfile',
  serverConfigs: 'UserServerConfigs',
  llmInstance: 'UserLlmInstance',
  mcpClient: 'UserMcpClient',
};

function report(kind: 'read' | 'write', label: string, legacy: string, field: string, accessor: Function): void {
  const site = callSiteOf(accessor);
  const helper = `${kind === 'read' ? 'get' : 'set'}${HELPER_OF[field] ?? 'UserField'}`;
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
    const isResource = field === 'llmInstance' || field === 'mcpClient';
    const get = function legacyGet(): unknown {
      const scope = als.getStore();
      if (scope !== undefined) report('read', label, legacy, field, get);
      const store = scope?.store ?? getDefaultStore();
      const gen = scope?.gen ?? store.globalGeneration();
      if (isResource) return store.resource(gen, field);
      return (gen.config as unknown as Record<string, unknown>)[field];
    };
    const set = function legacySet(value: unknown): void {
      const patch = { [field]: value } as ContextPatch;
      const scope = als.getStore();
      if (scope === undefined) {
        getDefaultStore().commit(null, patch);
        return;
      }
      report('write', label, legacy, field, set);
      scope.store.commit(scope.userUuid, patch, scope);
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
