/**
 * The helper API. Reads are synchronous; writes return a promise (await
 * them: with a shared store they complete only once stored). Inside a user scope (a request that passed the middleware,
 * `runAsUser`, a `bindToCurrentUser` callback) every helper answers for that
 * user with no argument. Each also takes an explicit user id, as in the seed
 * design; outside any scope, see the store's `mode`.
 *
 * @module
 */
import { als } from '../store/als.js';
import type { ConfigField, ContextPatch, LlmInstance, McpClient, ResourceName, UserContextFields, UserRuntimeContext } from '../context/types.js';
import { BUILTIN_FIELDS, type BuiltinField } from '../context/fields.js';
import { readGeneration, writePatch } from './access.js';

/** Reads one field of the current (or given) user. */
type FieldGetter<K extends BuiltinField> = (userUuid?: string) => UserContextFields[K];
/** Writes one field of the current (or given) user; resolves once stored. */
type FieldSetter<K extends BuiltinField> = (value: UserContextFields[K], userUuid?: string) => Promise<void>;

function fieldGetter<K extends BuiltinField>(field: K): FieldGetter<K> {
  const fn = `get${BUILTIN_FIELDS[field].accessor}`;
  return (userUuid) => readGeneration(userUuid, fn).config[field];
}

function fieldSetter<K extends BuiltinField>(field: K): FieldSetter<K> {
  const fn = `set${BUILTIN_FIELDS[field].accessor}`;
  return async (value, userUuid) => {
    await writePatch({ [field]: value } as ContextPatch, userUuid, fn);
  };
}

function readResource(name: ResourceName, userUuid: string | undefined, fn: string): unknown {
  const gen = readGeneration(userUuid, fn);
  return gen.owner.resource(gen, name);
}

/** The whole context of the current (or given) user, as a frozen snapshot. */
export function getUserRuntimeContext(userUuid?: string): UserRuntimeContext {
  const gen = readGeneration(userUuid, 'getUserRuntimeContext');
  return gen.owner.view(gen) as UserRuntimeContext;
}

/**
 * Applies several fields (and optionally `llmInstance` / `mcpClient`) as one
 * atomic step and returns the new context. Changing a field a resource
 * depends on drops that resource from the new configuration.
 */
export async function configureUser(patch: ContextPatch, userUuid?: string): Promise<UserRuntimeContext> {
  const gen = await writePatch(patch, userUuid, 'configureUser');
  return gen.owner.view(gen) as UserRuntimeContext;
}

/** Reads any field, app-declared ones included. */
export function getUserField<K extends ConfigField>(field: K, userUuid?: string): UserContextFields[K] {
  return readGeneration(userUuid, 'getUserField').config[field];
}

/** Writes any field, app-declared ones included. */
export async function setUserField<K extends ConfigField>(
  field: K,
  value: UserContextFields[K],
  userUuid?: string,
): Promise<void> {
  await writePatch({ [field]: value } as ContextPatch, userUuid, 'setUserField');
}

/** LLM provider of the current (or given) user, e.g. `"Google"`. */
export const getUserProvider = fieldGetter('provider');
/** Sets the provider. Drops the LLM instance (it was built for the old one); prefer `configureUser({ provider, model })`. */
export const setUserProvider = fieldSetter('provider');
/** Model of the current (or given) user, e.g. `"gemini-2.5-flash"`. */
export const getUserModel = fieldGetter('model');
/** Sets the model. Drops the LLM instance; prefer `configureUser({ provider, model })`. */
export const setUserModel = fieldSetter('model');
/** Name of the user's MCP server. */
export const getUserMcpServerName = fieldGetter('mcpServerName');
/** Sets the MCP server name (drops the MCP client). */
export const setUserMcpServerName = fieldSetter('mcpServerName');
/** Names of the user's MCP servers (several), or `null` when they use `mcpServerName`. */
export const getUserMcpServerNames = fieldGetter('mcpServerNames');
/** Sets the current user's MCP servers, by name from the operator's registry (rebuilds their MCP connections). */
export const setUserMcpServerNames = fieldSetter('mcpServerNames');
/** Id of the user's MCP server. */
export const getUserMcpServerId = fieldGetter('mcpServerId');
/** Sets the MCP server id (drops the MCP client). */
export const setUserMcpServerId = fieldSetter('mcpServerId');
/** AWS region (Bedrock). */
export const getUserAwsRegion = fieldGetter('awsRegion');
/** Sets the AWS region. */
export const setUserAwsRegion = fieldSetter('awsRegion');
/** Azure OpenAI deployment details. */
export const getUserAzureDeploymentDetails = fieldGetter('azureDeploymentDetails');
/** Sets the Azure deployment details. */
export const setUserAzureDeploymentDetails = fieldSetter('azureDeploymentDetails');
/** Friendli.ai details. */
export const getUserFriendliDetails = fieldGetter('friendliDetails');
/** Sets the Friendli.ai details. */
export const setUserFriendliDetails = fieldSetter('friendliDetails');
/** Model provider named in the user's profile. */
export const getUserModelProviderInProfile = fieldGetter('modelProviderInProfile');
/** Sets the model provider in profile. */
export const setUserModelProviderInProfile = fieldSetter('modelProviderInProfile');
/** MCP server configurations of the user. */
export const getUserServerConfigs = fieldGetter('serverConfigs');
/** Sets the server configurations (drops the MCP client). */
export const setUserServerConfigs = fieldSetter('serverConfigs');
/**
 * The current user's LLM credentials, in clear: for building a client in
 * this process only. Never put them in a response or a log line
 * (`redactContext` redacts the field).
 */
export const getUserLlmCredentials = fieldGetter('llmCredentials');
/** Sets the current user's LLM credentials; the next request's LLM client is built with them. */
export const setUserLlmCredentials = fieldSetter('llmCredentials');

/**
 * The LLM client of the current (or given) user, always the one built for the
 * provider/model this scope reads: set with `setUserLlmInstance()` /
 * `configureUser()`, or built lazily by the store's `resources.llmInstance.create`.
 * `null` when there is none.
 */
export function getUserLlmInstance(userUuid?: string): LlmInstance | null {
  return readResource('llmInstance', userUuid, 'getUserLlmInstance') as LlmInstance | null;
}
/** The MCP client of the current (or given) user; `null` when there is none. */
export function getUserMcpClient(userUuid?: string): McpClient | null {
  return readResource('mcpClient', userUuid, 'getUserMcpClient') as McpClient | null;
}

/**
 * Hands an LLM client to the current configuration. The context owns it from
 * now on: it is disposed when the configuration changes, the context is
 * evicted or the store closes, never while a request uses it.
 */
export async function setUserLlmInstance(instance: LlmInstance | null, userUuid?: string): Promise<void> {
  await writePatch({ llmInstance: instance }, userUuid, 'setUserLlmInstance');
}

/** Hands an MCP client to the current configuration (owned as `setUserLlmInstance`). */
export async function setUserMcpClient(client: McpClient | null, userUuid?: string): Promise<void> {
  await writePatch({ mcpClient: client }, userUuid, 'setUserMcpClient');
}

/** When the current (or given) user was last active. */
export function getUserLastAccess(userUuid?: string): Date {
  return getUserRuntimeContext(userUuid).lastAccess;
}

/** The id of the user whose scope this is, or `undefined` outside any scope. */
export function currentUserUuid(): string | undefined {
  return als.getStore()?.userUuid;
}

/** Claims of the verified token of the current request, or `undefined`. */
export function currentUserClaims(): Readonly<Record<string, unknown>> | undefined {
  return als.getStore()?.claims;
}
