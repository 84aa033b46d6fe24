/**
 * koa-user-context: per-user runtime context for Koa.
 *
 * @module
 */
export { userContext, type UserContextMiddleware, type UserContextOptions } from './auth/middleware.js';
export {
  ContextStore,
  type ContextMode,
  type ContextStoreOptions,
  type EvictionReason,
  type ResourceSpec,
  type UserEntry,
  type CommitInfo,
  type ContextPersistence,
  type DeleteInfo,
  type LoadInfo,
  type LoadedContext,
} from './store/store.js';
export { getDefaultStore, setDefaultStore } from './store/default-store.js';
export {
  ContextEvents,
  type ContextEventListener,
  type ContextEventMap,
  type ContextEventName,
  type ContextEvictionReason,
} from './store/events.js';
export { runAsUser, bindToCurrentUser, bindHandlerToCurrentUser, type RunAsUserOptions } from './api/run.js';
export { runWithProfile, currentProfileTag, isProfileOverride, type Profile } from './api/override.js';
export { getRequestSignal } from './api/request-signal.js';
export { bindAsyncIterable } from './api/bind-iterable.js';
export {
  configureUser,
  currentUserClaims,
  currentUserUuid,
  getUserAwsRegion,
  getUserAzureDeploymentDetails,
  getUserField,
  getUserFriendliDetails,
  getUserLastAccess,
  getUserLlmCredentials,
  getUserLlmInstance,
  getUserMcpClient,
  getUserMcpServerId,
  getUserMcpServerName,
  getUserMcpServerNames,
  getUserModel,
  getUserModelProviderInProfile,
  getUserProvider,
  getUserRuntimeContext,
  getUserServerConfigs,
  setUserAwsRegion,
  setUserAzureDeploymentDetails,
  setUserField,
  setUserFriendliDetails,
  setUserLlmCredentials,
  setUserLlmInstance,
  setUserMcpClient,
  setUserMcpServerId,
  setUserMcpServerName,
  setUserMcpServerNames,
  setUserModel,
  setUserModelProviderInProfile,
  setUserProvider,
  setUserServerConfigs,
} from './api/helpers.js';
export {
  adminRouter,
  hasAdminRole,
  type AdminContextRow,
  type AdminPredicate,
  type AdminRouter,
  type AdminRouterOptions,
} from './ops/admin.js';
export {
  requestLogger,
  statusLogLevel,
  userLogMixin,
  type RequestLogLevel,
  type RequestLogSink,
  type RequestLoggerOptions,
  type UserLogMixinOptions,
} from './ops/logging.js';
export { cleanupInactiveUserContexts, startCleanup, type StartCleanupOptions } from './ops/cleanup.js';
export {
  APP_CONFIG,
  APP_STATE,
  UNMIGRATED_GLOBAL_WARNING,
  type LegacyAppConfig,
  type LegacyAppState,
} from './compat/legacy.js';
export { isCredentialName, redactContext, redactText } from './context/redact.js';
export { DEFAULT_DEPENDS_ON, SECRET_FIELD_NAMES } from './context/fields.js';
export { type AzureDeploymentDetails, type ConfigField, type ContextPatch, type FriendliDetails, type LlmCredentials, type LlmInstance, type McpClient, type ResourceName, type UserConfig, type UserContextFields, type UserContextTypes, type UserResourceValues, type UserRuntimeContext } from './context/types.js';
export { TokenVerifier, type GetKey, type TokenOptions, type VerifiedToken } from './auth/token.js';
export type { KeyInput, KeyLease } from './auth/keys.js';
export { UUID_PATTERN, MAX_USER_ID_LENGTH, type UserIdPolicy } from './auth/user-id.js';
export type { Scope } from './store/scope.js';
export {
  AuthError,
  BaseUrlNotAllowedError,
  InvalidProviderSettingsError,
  LlmClientClosedError,
  LlmConfigurationError,
  MissingCredentialsError,
  ModelNotAllowedError,
  ProviderNotAllowedError,
  RequestError,
  type UserContextErrorCode,
  ConfigurationConflictError,
  ContextLoadError,
  ContextNotLoadedError,
  ContextSaveError,
  ContextStoreUnavailableError,
  ClientDisconnectedError,
  InvalidContextValueError,
  InvalidProfileError,
  InvalidSubjectError,
  InvalidTokenError,
  InvalidTokenTypeError,
  InvalidUserIdError,
  KeyMisconfiguredError,
  KeyUnavailableError,
  MalformedAuthorizationError,
  McpBackoffError,
  McpConnectError,
  McpConnectionLostError,
  McpInvalidAnswerError,
  McpPoolExhaustedError,
  McpToolNotAllowedError,
  MissingTokenError,
  RevocationCheckError,
  StoreClosedError,
  TokenExpiredError,
  TokenNotActiveError,
  TokenRevokedError,
  UserContextError,
  UserContextMissingError,
  UsageLimitExceededError,
  UsageStoreUnavailableError,
  type UsageLimitName,
} from './errors.js';
