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
import type {
  ConfigField,
  ContextPatch,
  LlmInstance,
  McpClient,
  ResourceName,
  UserContextFields,
  UserRuntimeContext,
} from '../context/values.js';
import { getDefaultStore } from '../store/default-store.js';
import { UserContextMissingError } from '../errors.js';
import type { Generation } from '../store/generation.js';
import type { ContextStore } from '../store/store.js';

function outside(fn: string): ContextStore {
  const store = getDefaultStore();
  if (store.globalOutsideScope) return store;
  store.events.emit('contextMissing', { fn });
  throw new UserContextMissingError(
    `${fn}() was called outside a user scope while the store is in multi-user mode. ` +
      'Call it while handling a request that passed the userContext() middleware, inside runAsUser(userUuid, fn), ' +
      `or from a callback wrapped with bindToCurrentUser(); or pass the user id explicitly: ${fn}(…, userUuid).`,
  );
}

/**
 * The generation a read sees: the scope's snapshot while the scope is open.
 * Work that outlives its scope (fire-and-forget) reads the user's current
 * generation instead, never a released snapshot (unless the store is closed:
 * then the snapshot is all there is). @internal
 */
export function readGeneration(userUuid: string | undefined, fn: string): Generation {
  const scope = als.getStore();
  if (userUuid === undefined) {
    if (scope !== undefined) return scope.open || scope.store.closed ? scope.gen : scope.store.currentGeneration(scope.userUuid);
    return outside(fn).globalGeneration();
  }
  if (scope !== undefined && scope.open && scope.userUuid === userUuid) return scope.gen;
  const store = scope?.store ?? getDefaultStore();
  const id = store.parseUserId(userUuid);
  if (scope !== undefined && scope.open && scope.userUuid === id) return scope.gen;
  return store.currentGeneration(id);
}

/**
 * Applies a patch for the current (or given) user. A shared store returns a
 * promise settled once the write is stored; callers await it. @internal
 */
export function writePatch(
  patch: ContextPatch,
  userUuid: string | undefined,
  fn: string,
): Generation | Promise<Generation> {
  const scope = als.getStore();
  if (userUuid === undefined) {
    if (scope !== undefined) return scope.store.write(scope.userUuid, patch, scope);
    return outside(fn).write(null, patch);
  }
  const store = scope?.store ?? getDefaultStore();
  const id = store.parseUserId(userUuid);
  return store.write(id, patch, scope !== undefined && scope.userUuid === id ? scope : undefined);
}

function fieldGetter<K extends ConfigField>(field: K, fn: string) {
  return (userUuid?: string): UserContextFields[K] => readGeneration(userUuid, fn).config[field];
}

function fieldSetter<K extends ConfigField>(field: K, fn: string) {
  return async (value: UserContextFields[K], userUuid?: string): Promise<void> => {
    await writePatch({ [field]: value } as ContextPatch, userUuid, fn);
  };
}

function resourceGetter<K extends ResourceName>(name: K, fn: string) {
  return (userUuid?: string): (K extends 'llmInstance' ? LlmInstance : McpClient) | null => {
    const gen = readGeneration(userUuid, fn);
    return gen.owner.resource(gen, name) as (K extends 'llmInstance' ? LlmInstance : McpClient) | null;
  };
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
export const getUserProvider = fieldGetter('provider', 'getUserProvider');
/** Sets the provider. Drops the LLM instance (it was built for the old one); prefer `configureUser({ provider, model })`. */
export const setUserProvider = fieldSetter('provider', 'setUserProvider');
/** Model of the current (or given) user, e.g. `"gemini-2.5-flash"`. */
export const getUserModel = fieldGetter('model', 'getUserModel');
/** Sets the model. Drops the LLM instance; prefer `configureUser({ provider, model })`. */
export const setUserModel = fieldSetter('model', 'setUserModel');
/** Name of the user's MCP server. */
export const getUserMcpServerName = fieldGetter('mcpServerName', 'getUserMcpServerName');
/** Sets the MCP server name (drops the MCP client). */
export const setUserMcpServerName = fieldSetter('mcpServerName', 'setUserMcpServerName');
/** Id of the user's MCP server. */
export const getUserMcpServerId = fieldGetter('mcpServerId', 'getUserMcpServerId');
/** Sets the MCP server id (drops the MCP client). */
export const setUserMcpServerId = fieldSetter('mcpServerId', 'setUserMcpServerId');
/** AWS region (Bedrock). */
export const getUserAwsRegion = fieldGetter('awsRegion', 'getUserAwsRegion');
/** Sets the AWS region. */
export const setUserAwsRegion = fieldSetter('awsRegion', 'setUserAwsRegion');
/** Azure OpenAI deployment details. */
export const getUserAzureDeploymentDetails = fieldGetter('azureDeploymentDetails', 'getUserAzureDeploymentDetails');
/** Sets the Azure deployment details. */
export const setUserAzureDeploymentDetails = fieldSetter('azureDeploymentDetails', 'setUserAzureDeploymentDetails');
/** Friendli.ai details. */
export const getUserFriendliDetails = fieldGetter('friendliDetails', 'getUserFriendliDetails');
/** Sets the Friendli.ai details. */
export const setUserFriendliDetails = fieldSetter('friendliDetails', 'setUserFriendliDetails');
/** Model provider named in the user's profile. */
export const getUserModelProviderInProfile = fieldGetter('modelProviderInProfile', 'getUserModelProviderInProfile');
/** Sets the model provider in profile. */
export const setUserModelProviderInProfile = fieldSetter('modelProviderInProfile', 'setUserModelProviderInProfile');
/** MCP server configurations of the user. */
export const getUserServerConfigs = fieldGetter('serverConfigs', 'getUserServerConfigs');
/** Sets the server configurations (drops the MCP client). */
export const setUserServerConfigs = fieldSetter('serverConfigs', 'setUserServerConfigs');

/**
 * The LLM client of the current (or given) user, always the one built for the
 * provider/model this scope reads: set with `setUserLlmInstance()` /
 * `configureUser()`, or built lazily by the store's `resources.llmInstance.create`.
 * `null` when there is none.
 */
export const getUserLlmInstance: (userUuid?: string) => LlmInstance | null = resourceGetter('llmInstance', 'getUserLlmInstance');
/** The MCP client of the current (or given) user; `null` when there is none. */
export const getUserMcpClient: (userUuid?: string) => McpClient | null = resourceGetter('mcpClient', 'getUserMcpClient');

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
