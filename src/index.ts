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
export { RedisContextStore, type RedisContextStoreOptions, type RedisStoreStats } from './redis-store.js';
export type { EncryptionKeyInput } from './redis-codec.js';
export { getDefaultStore, setDefaultStore } from './default-store.js';
export {
  ContextEvents,
  type ContextEventListener,
  type ContextEventMap,
  type ContextEventName,
  type ContextEvictionReason,
} from './events.js';
export { runAsUser, bindToCurrentUser, type RunAsUserOptions } from './run.js';
export { runWithProfile, currentProfileTag, isProfileOverride, type Profile } from './override.js';
export { getRequestSignal } from './request-signal.js';
export { bindAsyncIterable } from './bind-iterable.js';
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
export {
  adminRouter,
  hasAdminRole,
  type AdminContextRow,
  type AdminPredicate,
  type AdminRouter,
  type AdminRouterOptions,
} from './admin.js';
export {
  requestLogger,
  userLogMixin,
  type RequestLogSink,
  type RequestLoggerOptions,
  type UserLogMixinOptions,
} from './logging.js';
export { cleanupInactiveUserContexts, startCleanup, type StartCleanupOptions } from './cleanup.js';
export {
  APP_CONFIG,
  APP_STATE,
  UNMIGRATED_GLOBAL_WARNING,
  type LegacyAppConfig,
  type LegacyAppState,
} from './legacy.js';
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
  ConfigurationConflictError,
  ContextNotLoadedError,
  ContextStoreUnavailableError,
  ClientDisconnectedError,
  InvalidContextValueError,
  InvalidProfileError,
  InvalidSubjectError,
  InvalidTokenError,
  InvalidUserIdError,
  KeyUnavailableError,
  MalformedAuthorizationError,
  McpConnectError,
  MissingTokenError,
  StoreClosedError,
  TokenExpiredError,
  TokenNotActiveError,
  UserContextError,
  UserContextMissingError,
} from './errors.js';
