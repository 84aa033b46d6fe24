/**
 * The legacy process-wide globals, kept so code that was never migrated keeps
 * working. `APP_CONFIG.CURRENT_*` and `APP_STATE.llm` / `mcp_client` read and
 * write the default store's process-wide context, which is also what the
 * helpers use outside any scope in `single-user` mode.
 *
 * Per-user writes are NOT copied here unless the store was created with
 * `mirrorToLegacyGlobals: true` (which warns once): copying them would bring
 * back last-writer-wins for every reader of the globals.
 *
 * @module
 */
import type { AzureDeploymentDetails, ContextPatch, FriendliDetails, LlmInstance, McpClient } from './context.js';
import { getDefaultStore } from './default-store.js';

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

function legacyObject<T extends object>(map: Readonly<Record<string, string>>, label: string): T {
  const target = Object.create(null) as T;
  for (const [legacy, field] of Object.entries(map)) {
    Object.defineProperty(target, legacy, {
      enumerable: true,
      get() {
        const store = getDefaultStore();
        const gen = store.globalGeneration();
        if (field === 'llmInstance' || field === 'mcpClient') return store.resource(gen, field);
        return (gen.config as unknown as Record<string, unknown>)[field];
      },
      set(value: unknown) {
        getDefaultStore().commit(null, { [field]: value } as ContextPatch);
      },
    });
  }
  Object.defineProperty(target, Symbol.toStringTag, { value: label });
  return Object.seal(target);
}

/**
 * The seed's `APP_CONFIG`: process-wide provider/model/…, for code outside
 * any user scope. New code uses `getUserProvider()` and friends.
 */
export const APP_CONFIG: LegacyAppConfig = legacyObject<LegacyAppConfig>(LEGACY_CONFIG_FIELDS, 'APP_CONFIG');

/** The seed's `APP_STATE.llm` / `mcp_client` / `server_configs`, process-wide. */
export const APP_STATE: LegacyAppState = legacyObject<LegacyAppState>(LEGACY_STATE_FIELDS, 'APP_STATE');
