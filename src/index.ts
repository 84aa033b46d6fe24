/**
 * koa-user-context: per-user runtime context for Koa.
 *
 * @module
 */
export { userContext, type UserContextMiddleware, type UserContextOptions } from './middleware.js';
export {
  ContextStore,
  type ContextMode,
  type ContextStoreOptions,
  type EvictionReason,
  type ResourceSpec,
  type UserEntry,
} from './store.js';
export { getDefaultStore, setDefaultStore } from './default-store.js';
export { runAsUser, bindToCurrentUser, type RunAsUserOptions } from './run.js';
export {
  configureUser,
  currentUserClaims,
  currentUserUuid,
  getUserAwsRegion,
  getUserAzureDeploymentDetails,
  getUserField,
  getUserFriendliDetails,
  getUserLastAccess,
  getUserLlmInstance,
  getUserMcpClient,
  getUserMcpServerId,
  getUserMcpServerName,
  getUserModel,
  getUserModelProviderInProfile,
  getUserProvider,
  getUserRuntimeContext,
  getUserServerConfigs,
  setUserAwsRegion,
  setUserAzureDeploymentDetails,
  setUserField,
  setUserFriendliDetails,
  setUserLlmInstance,
  setUserMcpClient,
  setUserMcpServerId,
  setUserMcpServerName,
  setUserModel,
  setUserModelProviderInProfile,
  setUserProvider,
  setUserServerConfigs,
} from './helpers.js';
export { cleanupInactiveUserContexts, startCleanup, type StartCleanupOptions } from './cleanup.js';
export { APP_CONFIG, APP_STATE, type LegacyAppConfig, type LegacyAppState } from './legacy.js';
export {
  redactContext,
  type AzureDeploymentDetails,
  type ConfigField,
  type ContextPatch,
  type FriendliDetails,
  type LlmInstance,
  type McpClient,
  type ResourceName,
  type UserConfig,
  type UserContextFields,
  type UserContextTypes,
  type UserResourceValues,
  type UserRuntimeContext,
} from './context.js';
export { jwksKeyResolver, type JwksKeyResolverOptions } from './jwks.js';
export { TokenVerifier, type GetKey, type KeyInput, type TokenOptions, type VerifiedToken } from './token.js';
export { UUID_PATTERN, MAX_USER_ID_LENGTH, type UserIdPolicy } from './user-id.js';
export type { Scope } from './scope.js';
export {
  AuthError,
  InvalidContextValueError,
  InvalidSubjectError,
  InvalidTokenError,
  InvalidUserIdError,
  KeyUnavailableError,
  MalformedAuthorizationError,
  MissingTokenError,
  StoreClosedError,
  TokenExpiredError,
  TokenNotActiveError,
  UserContextError,
  UserContextMissingError,
} from './errors.js';
