/**
 * Provider definitions: how one provider of the seed (Google, Anthropic,
 * OpenAI, Amazon Bedrock, Azure, Friendli, Ollama) turns a model, the user's
 * credentials and the operator's base URL into an AI SDK language model.
 *
 * Each built-in takes the provider package's own factory, so an app installs
 * and loads only the `@ai-sdk/*` packages it uses:
 *
 * ```ts
 * import { createOpenAI } from '@ai-sdk/openai';
 * import { openai } from 'koa-user-context/ai';
 * const entry = { provider: openai(createOpenAI), models: ['gpt-4o-mini'] };
 * ```
 *
 * Credentials are always passed to the SDK explicitly: a definition never
 * lets the SDK read the process environment on its own (the registry reads
 * it instead, only for providers the operator opted in).
 *
 * @module
 */
import type { LanguageModel } from 'ai';
import type { LlmCredentials, UserConfig } from '../../context/types.js';

/** The fetch function given to the SDKs (`globalThis.fetch` unless the registry's `fetch` option says otherwise). */
export type FetchFunction = typeof globalThis.fetch;

/** A language model object (never a model id string, which the AI SDK would send through its gateway). */
export type LanguageModelObject = Exclude<LanguageModel, string>;

/** What kind of credentials a provider needs. */
export type CredentialKind =
  /** An API key (`llmCredentials.apiKey`). */
  | 'apiKey'
  /** An API key, or an AWS access key pair (`accessKeyId` + `secretAccessKey`, optional `sessionToken`). */
  | 'aws'
  /** Nothing (a local Ollama); a key is sent when the user has one. */
  | 'none';

/** What a definition's `create` receives. */
export interface ProviderInput {
  /** The model id (for Azure the deployment name, for Friendli the model id). */
  readonly model: string;
  /** Resolved credentials; `{}` for a provider that needs none and a user who has none. */
  readonly credentials: Readonly<LlmCredentials>;
  /** The operator's base URL (or the allowed one the user's configuration names); `undefined` = the SDK's default. */
  readonly baseURL: string | undefined;
  /** The whole configuration, for provider-specific fields (`awsRegion`, `azureDeploymentDetails`, …). */
  readonly config: UserConfig;
  /** The fetch function to pass to the SDK. */
  readonly fetch: FetchFunction | undefined;
}

/** How the registry builds models for one provider. Write your own for providers not built in. */
export interface ProviderDefinition {
  /** A label used in error messages (`'OpenAI'`). */
  readonly label: string;
  /** What credentials it needs. */
  readonly credentials: CredentialKind;
  /**
   * Environment variables the registry may read credentials from, only when
   * the operator opts in with `useEnvironment: true` for this provider.
   * For `'aws'`: `[apiKeyVariable, accessKeyIdVariable, secretAccessKeyVariable, sessionTokenVariable]`.
   */
  readonly environment: readonly string[];
  /** The model id to use (default: `config.model`). */
  modelOf?(config: UserConfig): string | null;
  /** An endpoint URL the user's configuration names (Azure endpoint, Friendli endpoint); checked against the allow-list. */
  userBaseURL?(config: UserConfig): string | undefined;
  /** Credentials kept in a provider-specific field (the seed's `azureDeploymentDetails.apiKey`, `friendliDetails.token`). */
  legacyCredentials?(config: UserConfig): LlmCredentials | undefined;
  /** What is missing from the configuration, as a sentence saying how to fix it; `undefined` when complete. */
  check?(config: UserConfig): string | undefined;
  /** Builds the model. Called once per configuration. */
  create(input: ProviderInput): LanguageModelObject;
}

/** Settings every AI SDK provider factory accepts. */
interface CommonSettings {
  apiKey?: string;
  baseURL?: string;
  fetch?: FetchFunction;
}

/** `createOpenAI` of `@ai-sdk/openai`. */
export type OpenAIFactory = (settings: CommonSettings) => { chat(modelId: string): LanguageModelObject };
/** `createAnthropic` of `@ai-sdk/anthropic`, `createGoogleGenerativeAI` of `@ai-sdk/google`. */
export type CallableFactory = (settings: CommonSettings) => (modelId: string) => LanguageModelObject;
/** `createAmazonBedrock` of `@ai-sdk/amazon-bedrock`. */
export type BedrockFactory = (settings: CommonSettings & {
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}) => (modelId: string) => LanguageModelObject;
/** `createAzure` of `@ai-sdk/azure`. */
export type AzureFactory = (settings: CommonSettings & { apiVersion?: string; useDeploymentBasedUrls?: boolean }) => {
  chat(deploymentId: string): LanguageModelObject;
};
/** `createOpenAICompatible` of `@ai-sdk/openai-compatible`. */
export type OpenAICompatibleFactory = (settings: CommonSettings & { name: string; baseURL: string }) => {
  chatModel(modelId: string): LanguageModelObject;
};

const common = ({ credentials, baseURL, fetch }: ProviderInput): CommonSettings => ({
  apiKey: credentials.apiKey ?? '',
  ...(baseURL !== undefined ? { baseURL } : {}),
  ...(fetch !== undefined ? { fetch } : {}),
});

/** A provider that takes an API key, the base URL and fetch, and nothing of the user's configuration. */
function apiKeyProvider(label: string, variable: string, build: (settings: CommonSettings, model: string) => LanguageModelObject): ProviderDefinition {
  return { label, credentials: 'apiKey', environment: [variable], create: (input) => build(common(input), input.model) };
}

/** OpenAI, on the chat completions API. */
export function openai(createOpenAI: OpenAIFactory): ProviderDefinition {
  return apiKeyProvider('OpenAI', 'OPENAI_API_KEY', (settings, model) => createOpenAI(settings).chat(model));
}

/** Anthropic, on the messages API. */
export function anthropic(createAnthropic: CallableFactory): ProviderDefinition {
  return apiKeyProvider('Anthropic', 'ANTHROPIC_API_KEY', (settings, model) => createAnthropic(settings)(model));
}

/** Google (Gemini), on the generateContent API. */
export function google(createGoogleGenerativeAI: CallableFactory): ProviderDefinition {
  return apiKeyProvider('Google', 'GOOGLE_GENERATIVE_AI_API_KEY', (settings, model) => createGoogleGenerativeAI(settings)(model));
}

/** Amazon Bedrock (Converse API) in the user's `awsRegion`, with a Bedrock API key or an AWS access key pair. */
export function bedrock(createAmazonBedrock: BedrockFactory): ProviderDefinition {
  return {
    label: 'Amazon Bedrock',
    credentials: 'aws',
    environment: ['AWS_BEARER_TOKEN_BEDROCK', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'],
    check: (config) =>
      typeof config.awsRegion === 'string' && /^[a-z]{2}(-[a-z]+)+-\d+$/.test(config.awsRegion)
        ? undefined
        : 'Amazon Bedrock needs "awsRegion", such as "us-east-1".',
    create: (input) => {
      const { credentials: c, baseURL, fetch } = input;
      const auth = c.apiKey !== undefined
        ? { apiKey: c.apiKey }
        // '' keeps the SDK from reading AWS_BEARER_TOKEN_BEDROCK over the user's key pair.
        : { apiKey: '', accessKeyId: c.accessKeyId!, secretAccessKey: c.secretAccessKey!, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}) };
      return createAmazonBedrock({
        ...auth,
        region: input.config.awsRegion!,
        ...(baseURL !== undefined ? { baseURL } : {}),
        ...(fetch !== undefined ? { fetch } : {}),
      })(input.model);
    },
  };
}

/**
 * Azure OpenAI: the deployment (`azureDeploymentDetails.deploymentName`, else
 * the model) on the endpoint the user names (`azureDeploymentDetails.endpoint`,
 * which must be on the operator's list) or the operator's base URL.
 */
export function azure(createAzure: AzureFactory): ProviderDefinition {
  return {
    label: 'Azure OpenAI',
    credentials: 'apiKey',
    environment: ['AZURE_API_KEY'],
    modelOf: (config) => stringOr(config.azureDeploymentDetails?.deploymentName) ?? config.model,
    userBaseURL: (config) => stringOr(config.azureDeploymentDetails?.endpoint),
    legacyCredentials: (config) => keyIn(config.azureDeploymentDetails, 'apiKey'),
    create: (input) => {
      if (input.baseURL === undefined) {
        throw new TypeError('Azure OpenAI needs a base URL: give the provider entry a baseURL (https://<resource>.openai.azure.com/openai).');
      }
      const apiVersion = stringOr(input.config.azureDeploymentDetails?.apiVersion);
      return createAzure({ ...common(input), useDeploymentBasedUrls: true, ...(apiVersion ? { apiVersion } : {}) }).chat(input.model);
    },
  };
}

/** Friendli, through its OpenAI-compatible endpoint. */
export function friendli(createOpenAICompatible: OpenAICompatibleFactory): ProviderDefinition {
  return {
    label: 'Friendli',
    credentials: 'apiKey',
    environment: ['FRIENDLI_TOKEN'],
    modelOf: (config) => stringOr(config.friendliDetails?.modelId) ?? config.model,
    userBaseURL: (config) => stringOr(config.friendliDetails?.endpointUrl),
    legacyCredentials: (config) => keyIn(config.friendliDetails, 'token'),
    create: (input) => createOpenAICompatible({ ...common(input), name: 'friendli', baseURL: input.baseURL ?? 'https://api.friendli.ai/serverless/v1' })
      .chatModel(input.model),
  };
}

/** Ollama, through its OpenAI-compatible endpoint; needs no key. */
export function ollama(createOpenAICompatible: OpenAICompatibleFactory): ProviderDefinition {
  return {
    label: 'Ollama',
    credentials: 'none',
    environment: [],
    create: (input) => {
      const { apiKey } = input.credentials;
      return createOpenAICompatible({
        name: 'ollama',
        baseURL: input.baseURL ?? 'http://127.0.0.1:11434/v1',
        ...(apiKey !== undefined ? { apiKey } : {}),
        ...(input.fetch !== undefined ? { fetch: input.fetch } : {}),
      }).chatModel(input.model);
    },
  };
}

/** `{ apiKey }` from a key of the seed's provider details, if it holds one. */
function keyIn(details: Readonly<Record<string, unknown>> | null | undefined, name: string): LlmCredentials | undefined {
  const apiKey = stringOr(details?.[name]);
  return apiKey === undefined ? undefined : { apiKey };
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
