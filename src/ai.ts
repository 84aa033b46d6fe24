/**
 * `koa-user-context/ai`: per-user LLM clients on the Vercel AI SDK. A provider
 * registry maps each user's provider, model and `llmCredentials` to a
 * language model within the operator's allow-list; calls use the request's
 * abort signal by default. `ai` and the `@ai-sdk/*` packages are optional
 * peer dependencies; the root entry never loads them.
 *
 * @module
 */
export {
  createLlmRegistry,
  getUserLlm,
  type LlmPlan,
  type LlmRegistry,
  type LlmRegistryOptions,
  type RegistryLlmInstance,
  type ProviderEntry,
} from './agents/ai/registry.js';
export { UserLlm, type GenerateTextOptions, type StreamTextOptions } from './agents/ai/client.js';
export {
  anthropic,
  azure,
  bedrock,
  friendli,
  google,
  ollama,
  openai,
  type AzureFactory,
  type BedrockFactory,
  type CallableFactory,
  type CredentialKind,
  type FetchFunction,
  type LanguageModelObject,
  type OpenAICompatibleFactory,
  type OpenAIFactory,
  type ProviderDefinition,
  type ProviderInput,
} from './agents/ai/providers.js';
export { boundResult, getUserTools, userToolOrigin, type BoundedResult, type UserToolOrigin, type UserToolsOptions } from './agents/ai/tools.js';
export { credentialsShapeProblem } from './agents/ai/credentials.js';
