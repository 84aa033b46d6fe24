/**
 * The one table of built-in fields. Everything that lists fields derives from
 * it: the defaults of a new context, which fields each live resource is built
 * from (`dependsOn`), the legacy `APP_CONFIG` / `APP_STATE` names and their
 * helper names, which fields are encrypted at rest in Redis, and how each is
 * redacted in views that leave the process.
 *
 * @module
 */
import type { BuiltinFields, ResourceName } from './types.js';

/**
 * Which parts of a field are credentials:
 * - `'whole'`: the value itself (an API key);
 * - `{ keys }`: these keys of the (object) value, at any depth;
 * - `'pattern'`: any key that names a credential (`isCredentialName()` in
 *   redact.ts: `key`, `apiKey`, `token`, `password`, `privateKey`, …), for
 *   free-form data.
 *
 * Whatever the spec, every key that names a credential is redacted at any
 * depth, and credentials inside strings (a connection string's password)
 * are masked.
 *
 * A field with any of them is encrypted at rest by the Redis store.
 */
export type SecretSpec = 'whole' | 'pattern' | { readonly keys: readonly string[] };

/** What the library knows about one built-in field. */
export interface FieldSpec<T = unknown> {
  /** Its value in a new context. */
  readonly default: T;
  /** The live resource built from it: changing the field rebuilds that resource. */
  readonly usedBy: ResourceName | null;
  /** Its name in the seed's `APP_CONFIG` / `APP_STATE` globals, if it had one. */
  readonly legacy: { readonly object: 'APP_CONFIG' | 'APP_STATE'; readonly name: string } | null;
  /** Its helpers without `get`/`set`: `'UserProvider'` → `getUserProvider()` / `setUserProvider()`. */
  readonly accessor: string;
  /** Its credentials, if it can hold any. */
  readonly secret: SecretSpec | null;
}

/** What the library knows about one live resource. */
export interface ResourceInfo {
  /** Its name in the seed's `APP_STATE`. */
  readonly legacy: string;
  /** Its helpers without `get`/`set`. */
  readonly accessor: string;
  /** A short label for dashboards. */
  readonly label: string;
}

const config = <N extends string>(name: N) => ({ object: 'APP_CONFIG', name }) as const;
const state = <N extends string>(name: N) => ({ object: 'APP_STATE', name }) as const;

/** The built-in fields. Add a field here (and to `BuiltinFields`) and everything else follows. */
export const BUILTIN_FIELDS = Object.freeze({
  provider: { default: null, usedBy: 'llmInstance', legacy: config('CURRENT_PROVIDER'), accessor: 'UserProvider', secret: null },
  model: { default: null, usedBy: 'llmInstance', legacy: config('CURRENT_MODEL'), accessor: 'UserModel', secret: null },
  mcpServerName: {
    default: null, usedBy: 'mcpClient', legacy: config('CURRENT_MCP_SERVER_NAME'), accessor: 'UserMcpServerName', secret: null,
  },
  mcpServerNames: { default: null, usedBy: 'mcpClient', legacy: null, accessor: 'UserMcpServerNames', secret: null },
  mcpServerId: { default: null, usedBy: 'mcpClient', legacy: config('CURRENT_MCP_SERVER_ID'), accessor: 'UserMcpServerId', secret: null },
  awsRegion: { default: null, usedBy: 'llmInstance', legacy: config('CURRENT_AWS_REGION'), accessor: 'UserAwsRegion', secret: null },
  azureDeploymentDetails: {
    default: null,
    usedBy: 'llmInstance',
    legacy: config('CURRENT_AZURE_DEPLOYMENT_DETAILS'),
    accessor: 'UserAzureDeploymentDetails',
    secret: { keys: ['apiKey'] },
  },
  friendliDetails: {
    default: null,
    usedBy: 'llmInstance',
    legacy: config('CURRENT_FRIENDLI_DETAILS'),
    accessor: 'UserFriendliDetails',
    secret: { keys: ['token'] },
  },
  modelProviderInProfile: {
    default: null,
    usedBy: 'llmInstance',
    legacy: config('CURRENT_MODEL_PROVIDER_IN_PROFILE'),
    accessor: 'UserModelProviderInProfile',
    secret: null,
  },
  serverConfigs: {
    default: Object.freeze({}),
    usedBy: 'mcpClient',
    legacy: state('server_configs'),
    accessor: 'UserServerConfigs',
    secret: 'pattern',
  },
  llmCredentials: { default: null, usedBy: 'llmInstance', legacy: null, accessor: 'UserLlmCredentials', secret: 'whole' },
} as const satisfies { readonly [K in keyof BuiltinFields]-?: FieldSpec<BuiltinFields[K]> });

/** The seed's global names of the fields that `object` held, each with its field's type. */
export type LegacyNames<Object extends 'APP_CONFIG' | 'APP_STATE'> = {
  -readonly [K in BuiltinField as (typeof BUILTIN_FIELDS)[K]['legacy'] extends { object: Object; name: infer N extends string } ? N : never]: BuiltinFields[K];
};

/** The live resources. */
export const RESOURCES: { readonly [K in ResourceName]: ResourceInfo } = Object.freeze({
  llmInstance: { legacy: 'llm', accessor: 'UserLlmInstance', label: 'LLM' },
  mcpClient: { legacy: 'mcp_client', accessor: 'UserMcpClient', label: 'MCP' },
});

/** A built-in field name. */
export type BuiltinField = keyof BuiltinFields;

const entries = Object.entries(BUILTIN_FIELDS) as Array<[BuiltinField, FieldSpec]>;
const specOf = (name: BuiltinField): FieldSpec => BUILTIN_FIELDS[name];

/** Names of the built-in fields, in table order. */
export const BUILTIN_FIELD_NAMES: readonly BuiltinField[] = Object.freeze(entries.map(([name]) => name));

/** Names of the live resources. */
export const RESOURCE_NAMES: readonly ResourceName[] = Object.freeze(Object.keys(RESOURCES) as ResourceName[]);

/** The built-in fields of a new context. */
export const BUILTIN_DEFAULTS: Readonly<BuiltinFields> = Object.freeze(
  Object.fromEntries(entries.map(([name, spec]) => [name, spec.default])) as unknown as BuiltinFields,
);

/**
 * The fields each resource is built from by default: its `dependsOn` unless
 * `resources.<name>.dependsOn` says otherwise. Extend rather than restate:
 * `dependsOn: [...DEFAULT_DEPENDS_ON.llmInstance, 'tenant']`.
 */
export const DEFAULT_DEPENDS_ON: { readonly [K in ResourceName]: readonly BuiltinField[] } = Object.freeze(
  Object.fromEntries(
    RESOURCE_NAMES.map((resource) => [
      resource,
      Object.freeze(entries.filter(([, spec]) => spec.usedBy === resource).map(([name]) => name)),
    ]),
  ) as Record<ResourceName, readonly BuiltinField[]>,
);

/** The built-in fields that may hold credentials (encrypted at rest by the Redis store by default). */
export const SECRET_FIELD_NAMES: readonly BuiltinField[] = Object.freeze(
  entries.filter(([, spec]) => spec.secret !== null).map(([name]) => name),
);

/** Whether a patch key names a live resource rather than a field. */
export function isResourceName(key: string): key is ResourceName {
  return Object.prototype.hasOwnProperty.call(RESOURCES, key);
}

/** The helper suffix of a field or resource (`'UserProvider'`), `'UserField'` for app fields. */
export function accessorOf(name: string): string {
  if (isResourceName(name)) return RESOURCES[name].accessor;
  return Object.prototype.hasOwnProperty.call(BUILTIN_FIELDS, name) ? specOf(name as BuiltinField).accessor : 'UserField';
}
