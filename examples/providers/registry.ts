/**
 * The example's LLM registry: the seed's seven providers on the real AI SDK
 * provider packages, every one pointed at the local wire server
 * (examples/providers/wire-server.ts) instead of the provider's cloud.
 * Users pick a provider and a model from these lists and bring their own key.
 */
import { createAmazonBedrock } from '@ai-sdk/amazon-bedrock';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createAzure } from '@ai-sdk/azure';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import {
  anthropic,
  azure,
  bedrock,
  createLlmRegistry,
  friendli,
  google,
  ollama,
  openai,
  type LlmRegistry,
  type LlmRegistryOptions,
} from '../../src/ai.js';

// The AI SDK prints a console warning for model ids it does not know; the
// example's ids are real ones, but keep test and demo output clean.
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

/** Models each provider allows in the example (the operator's allow-list). */
export const EXAMPLE_MODELS = {
  OpenAI: ['gpt-4o-mini', 'gpt-4.1'],
  Anthropic: ['claude-3-5-haiku', 'claude-sonnet-4-0'],
  Google: ['gemini-2.5-flash', 'gemini-2.5-pro'],
  Amazon: ['anthropic.claude-3-haiku-20240307-v1:0', 'amazon.nova-lite-v1:0'],
  Azure: ['gpt-4o-prod', 'gpt-4o-mini-prod'],
  Friendli: ['meta-llama-3.1-8b-instruct'],
  Ollama: ['llama3.2', 'qwen2.5'],
} as const;

export type ExampleProvider = keyof typeof EXAMPLE_MODELS;

export interface ExampleRegistryOptions {
  /**
   * Allow any model id (tests that make up model names).
   * @default false (only EXAMPLE_MODELS)
   */
  anyModel?: boolean;
  /** Passed through to createLlmRegistry. */
  resolveCredentials?: LlmRegistryOptions['resolveCredentials'];
  /**
   * Providers whose users without a key run on the server's environment key.
   * @default [] (none: a missing key is an error)
   */
  useEnvironment?: readonly ExampleProvider[];
  /** Passed through to createLlmRegistry: meters every client (koa-user-context/usage). */
  usage?: LlmRegistryOptions['usage'];
}

/** The registry of the example app, with every provider's base URL on the wire server at `wireUrl`. */
export function exampleLlmRegistry(wireUrl: string, options: ExampleRegistryOptions = {}): LlmRegistry {
  const models = (name: ExampleProvider) => (options.anyModel === true ? '*' : EXAMPLE_MODELS[name]);
  const env = (name: ExampleProvider) => options.useEnvironment?.includes(name) ?? false;
  return createLlmRegistry({
    providers: {
      OpenAI: { provider: openai(createOpenAI), models: models('OpenAI'), baseURL: `${wireUrl}/openai/v1`, useEnvironment: env('OpenAI') },
      Anthropic: { provider: anthropic(createAnthropic), models: models('Anthropic'), baseURL: `${wireUrl}/anthropic/v1`, useEnvironment: env('Anthropic') },
      Google: { provider: google(createGoogleGenerativeAI), models: models('Google'), baseURL: `${wireUrl}/google/v1beta`, useEnvironment: env('Google') },
      Amazon: { provider: bedrock(createAmazonBedrock), models: models('Amazon'), baseURL: `${wireUrl}/bedrock`, useEnvironment: env('Amazon') },
      Azure: { provider: azure(createAzure), models: models('Azure'), baseURL: `${wireUrl}/azure/openai`, useEnvironment: env('Azure') },
      Friendli: { provider: friendli(createOpenAICompatible), models: models('Friendli'), baseURL: `${wireUrl}/friendli/v1`, useEnvironment: env('Friendli') },
      Ollama: { provider: ollama(createOpenAICompatible), models: models('Ollama'), baseURL: `${wireUrl}/ollama/v1` },
    },
    ...(options.resolveCredentials !== undefined ? { resolveCredentials: options.resolveCredentials } : {}),
    ...(options.usage !== undefined ? { usage: options.usage } : {}),
  });
}
