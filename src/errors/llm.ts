/**
 * LLM providers (koa-user-context/ai): configurations that cannot be served,
 * and clients used after they were closed.
 *
 * @module
 */
import { RequestError, UserContextError, type UserContextErrorCode } from './base.js';

/**
 * A user's LLM configuration cannot be served: nothing was sent to any
 * provider. The subclasses say why; each is a 400 with a stable `error`.
 * Messages never contain a credential.
 */
export class LlmConfigurationError extends RequestError {
  static override readonly code: UserContextErrorCode = 'ERR_LLM_CONFIGURATION';
  static override status = 400;
  static override error = 'invalid_llm_configuration';
}

/** The configured provider is not one the operator allows. */
export class ProviderNotAllowedError extends LlmConfigurationError {
  static override readonly code = 'ERR_PROVIDER_NOT_ALLOWED';
  static override error = 'provider_not_allowed';
}

/** The configured model is not on the operator's list for its provider. */
export class ModelNotAllowedError extends LlmConfigurationError {
  static override readonly code = 'ERR_MODEL_NOT_ALLOWED';
  static override error = 'model_not_allowed';
}

/** The configuration names an endpoint URL that is not on the operator's list. */
export class BaseUrlNotAllowedError extends LlmConfigurationError {
  static override readonly code = 'ERR_BASE_URL_NOT_ALLOWED';
  static override error = 'base_url_not_allowed';
}

/**
 * The provider needs credentials the user's configuration does not have (and
 * the operator did not allow the server's own environment for it).
 */
export class MissingCredentialsError extends LlmConfigurationError {
  static override readonly code = 'ERR_MISSING_CREDENTIALS';
  static override error = 'missing_credentials';
}

/** A provider-specific setting is missing or malformed (`awsRegion`, Azure deployment, …). */
export class InvalidProviderSettingsError extends LlmConfigurationError {
  static override readonly code = 'ERR_INVALID_PROVIDER_SETTINGS';
  static override error = 'invalid_provider_settings';
}

/**
 * An LLM client was used after the store disposed it (its configuration was
 * replaced and the requests using it had ended): the code kept it past its
 * request. Read it again inside the request.
 */
export class LlmClientClosedError extends UserContextError {
  static override readonly code = 'ERR_LLM_CLIENT_CLOSED';
}
