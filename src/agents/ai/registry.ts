/**
 * The provider registry: maps a user's `provider`, `model` and
 * `llmCredentials` to an AI SDK language model, within the operator's
 * allow-list of providers, models and base URLs. Users pick names; the
 * server decides where calls go and never falls back to its own keys unless
 * the operator opted in for that provider.
 *
 * ```ts
 * import { createOpenAI } from '@ai-sdk/openai';
 * import { createAnthropic } from '@ai-sdk/anthropic';
 * import { anthropic, createLlmRegistry, getUserLlm, openai } from 'koa-user-context/ai';
 *
 * const llms = createLlmRegistry({ providers: {
 *   OpenAI: { provider: openai(createOpenAI), models: ['gpt-4o-mini', 'gpt-4.1'] },
 *   Anthropic: { provider: anthropic(createAnthropic), models: ['claude-3-5-haiku-latest'] },
 * } });
 * const store = new ContextStore({ resources: { llmInstance: llms.resource() } });
 * // in a request, after configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey } }):
 * const { text } = await (await getUserLlm())!.generateText({ prompt });
 * ```
 *
 * @module
 */
import { getUserLlmInstance } from '../../api/helpers.js';
import { DEFAULT_DEPENDS_ON } from '../../context/fields.js';
import type { ConfigField, LlmCredentials, UserConfig } from '../../context/types.js';
import {
  BaseUrlNotAllowedError,
  InvalidProviderSettingsError,
  MissingCredentialsError,
  ModelNotAllowedError,
  ProviderNotAllowedError,
} from '../../errors.js';
import type { ResourceSpec } from '../../store/store.js';
import type { UsageMeter } from '../../usage/meter.js';
import { meteredModel } from '../../usage/middleware.js';
import { UserLlm } from './client.js';
import { credentialsShapeProblem, describeNeed, environmentCredentials, hasWhatKindNeeds } from './credentials.js';
import type { FetchFunction, ProviderDefinition } from './providers.js';

/** One provider the operator allows. */
export interface ProviderEntry {
  /** How models are built: a built-in (`openai(createOpenAI)`, …) or your own {@link ProviderDefinition}. */
  provider: ProviderDefinition;
  /** Models users may pick; `'*'` allows any id. Required: there is no default allow-list. */
  models: readonly string[] | '*';
  /**
   * Where calls go.
   * @default the SDK's own endpoint for the provider
   */
  baseURL?: string;
  /**
   * Further endpoints a user's configuration may name, for providers that
   * take one from it (`azureDeploymentDetails.endpoint`, `friendliDetails.endpointUrl`).
   * Any other URL in a configuration is refused.
   * @default [] (only `baseURL`)
   */
  allowedBaseURLs?: readonly string[];
  /**
   * Use the server's own credentials from the environment (`OPENAI_API_KEY`, …)
   * for users who have none. Off, a user without credentials gets
   * `MissingCredentialsError` and no call is made.
   * @default false
   */
  useEnvironment?: boolean;
}

/** Options of {@link createLlmRegistry}. */
export interface LlmRegistryOptions {
  /** The providers users may pick, by the name they configure (`'OpenAI'`, `'Anthropic'`, …). Required. */
  providers: Readonly<Record<string, ProviderEntry>>;
  /**
   * Resolves `llmCredentials.ref` (a vault path, a secret id) to credentials,
   * once per configuration. May be async; the client is then built async.
   * @default undefined (a configuration with a `ref` is refused)
   */
  resolveCredentials?: (ref: string, info: { provider: string; userUuid: string }) => LlmCredentials | Promise<LlmCredentials>;
  /**
   * The fetch function every SDK uses.
   * @default globalThis.fetch
   */
  fetch?: FetchFunction;
  /**
   * Meters every client this registry builds (`createUsageMeter()` of
   * koa-user-context/usage): each model call is checked against the user's
   * limits before it goes out and its tokens booked after, with no code in
   * the app's executor.
   * @default undefined (no metering)
   */
  usage?: UsageMeter;
}

/** What {@link LlmRegistry.validate} found out about a configuration. */
export interface LlmPlan {
  readonly provider: string;
  readonly model: string;
  readonly baseURL: string | undefined;
  readonly credentialSource: UserLlm['credentialSource'] | 'reference';
}

/**
 * What a registry's {@link LlmRegistry.resource} stores as `llmInstance`, and what
 * `getUserLlmInstance()` then answers: the client, or a promise of it while a
 * credentials reference resolves. Register it by declaration merging:
 * `declare module 'koa-user-context' { interface UserContextTypes { llm: RegistryLlmInstance } }`.
 */
export type RegistryLlmInstance = UserLlm | Promise<UserLlm>;

export interface LlmRegistry {
  /** The allowed provider names. */
  readonly providers: readonly string[];
  /**
   * Checks a configuration without building anything; throws a subclass of
   * `LlmConfigurationError` (400) saying what is missing. `null` when it
   * names no provider.
   */
  validate(config: UserConfig): LlmPlan | null;
  /** Builds the client of a configuration (async only for a credentials reference); `null` without a provider. */
  create(config: UserConfig, userUuid: string): UserLlm | Promise<UserLlm> | null;
  /**
   * The store's `resources.llmInstance`: built by {@link create}, closed on
   * disposal, rebuilt when any of `DEFAULT_DEPENDS_ON.llmInstance` (provider,
   * model, llmCredentials, …) or `alsoDependsOn` changes. Typed by what it
   * builds, so an app that registers the client type fits it:
   * `interface UserContextTypes { llm: RegistryLlmInstance }`.
   */
  resource(options?: { alsoDependsOn?: readonly ConfigField[] }): ResourceSpec<RegistryLlmInstance>;
}

const ENTRY_KEYS = new Set(['provider', 'models', 'baseURL', 'allowedBaseURLs', 'useEnvironment']);
const OPTION_KEYS = new Set(['providers', 'resolveCredentials', 'fetch', 'usage']);

interface Resolved {
  plan: LlmPlan;
  definition: ProviderDefinition;
  credentials: Readonly<LlmCredentials> | undefined;
  ref: string | undefined;
}

/** Creates a registry; validates the options once. */
export function createLlmRegistry(options: LlmRegistryOptions): LlmRegistry {
  if (options === null || typeof options !== 'object') throw new TypeError('createLlmRegistry(options): options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new TypeError(`createLlmRegistry: unknown option "${key}"; known: ${[...OPTION_KEYS].join(', ')}`);
  }
  const { providers, resolveCredentials, fetch, usage } = options;
  if (usage !== undefined && (usage === null || typeof usage !== 'object' || typeof usage.admit !== 'function')) {
    throw new TypeError('options.usage must be a usage meter: createUsageMeter() from koa-user-context/usage');
  }
  if (providers === null || typeof providers !== 'object' || Object.keys(providers).length === 0) {
    throw new TypeError('options.providers must name at least one provider, e.g. { OpenAI: { provider: openai(createOpenAI), models: [...] } }');
  }
  if (resolveCredentials !== undefined && typeof resolveCredentials !== 'function') {
    throw new TypeError('options.resolveCredentials must be a function (ref, { provider, userUuid }) => credentials');
  }
  if (fetch !== undefined && typeof fetch !== 'function') throw new TypeError('options.fetch must be a fetch function');
  const entries = new Map<string, Required<Omit<ProviderEntry, 'baseURL'>> & { baseURL: string | undefined }>();
  for (const [name, entry] of Object.entries(providers)) entries.set(name, checkEntry(name, entry));
  const names = Object.freeze([...entries.keys()]);

  function resolve(config: UserConfig): Resolved | null {
    const provider = config.provider;
    if (provider === null || provider === undefined) return null;
    const entry = entries.get(provider);
    if (entry === undefined) {
      throw new ProviderNotAllowedError(`Provider "${String(provider).slice(0, 60)}" is not enabled on this server; use one of ${names.join(', ')}.`);
    }
    const definition = entry.provider;
    const model = definition.modelOf?.(config) ?? config.model;
    if (typeof model !== 'string' || model === '') {
      throw new InvalidProviderSettingsError(`Choose a model for ${provider}${entry.models === '*' ? '' : `: one of ${entry.models.join(', ')}`}.`);
    }
    if (entry.models !== '*' && !entry.models.includes(model)) {
      throw new ModelNotAllowedError(`Model "${model.slice(0, 80)}" is not enabled for ${provider}; use one of ${entry.models.join(', ')}.`);
    }
    const problem = definition.check?.(config);
    if (problem !== undefined) throw new InvalidProviderSettingsError(problem);
    const named = definition.userBaseURL?.(config);
    let baseURL = entry.baseURL;
    if (named !== undefined) {
      const allowed = [entry.baseURL, ...entry.allowedBaseURLs].filter((u): u is string => u !== undefined);
      const match = allowed.find((u) => trimSlash(u) === trimSlash(named));
      if (match === undefined) {
        throw new BaseUrlNotAllowedError(
          `The endpoint in this configuration is not one this server calls for ${provider}; ` +
            (allowed.length > 0 ? `use ${allowed.join(' or ')}, or leave it out.` : 'leave it out.'),
        );
      }
      baseURL = match;
    }
    const stored = config.llmCredentials ?? definition.legacyCredentials?.(config) ?? undefined;
    const shape = credentialsShapeProblem(stored ?? null);
    if (shape !== undefined) throw new InvalidProviderSettingsError(shape);
    // Credentials made for another provider are never sent to this one.
    const foreign = stored?.provider !== undefined && stored.provider !== provider;
    const own = foreign ? undefined : stored;
    if (own?.ref !== undefined) {
      if (resolveCredentials === undefined) {
        throw new MissingCredentialsError('"llmCredentials.ref" names stored credentials, but this server resolves none; send "llmCredentials": { "apiKey" } instead.');
      }
      return { plan: { provider, model, baseURL, credentialSource: 'reference' }, definition, credentials: undefined, ref: own.ref };
    }
    if (hasWhatKindNeeds(definition.credentials, own)) {
      const source = own !== undefined && Object.keys(own).length > 0 ? 'user' : 'none';
      return { plan: { provider, model, baseURL, credentialSource: source }, definition, credentials: own ?? {}, ref: undefined };
    }
    const fromEnv = entry.useEnvironment ? environmentCredentials(definition) : undefined;
    if (fromEnv === undefined) {
      throw new MissingCredentialsError(
        (foreign
          ? `The credentials in this configuration are for ${String(stored!.provider).slice(0, 60)}, not ${provider}: set ${describeNeed(definition)} for ${provider}.`
          : `${provider} needs credentials and this configuration has none: set ${describeNeed(definition)}.`) +
          (entry.useEnvironment ? ` The server's ${definition.environment.join(' / ')} is not set either.` : ''),
      );
    }
    return { plan: { provider, model, baseURL, credentialSource: 'environment' }, definition, credentials: fromEnv, ref: undefined };
  }

  function build(r: Resolved, config: UserConfig, userUuid: string, credentials: Readonly<LlmCredentials>, source: UserLlm['credentialSource']): UserLlm {
    const languageModel = r.definition.create({ model: r.plan.model, credentials, baseURL: r.plan.baseURL, config, fetch });
    if (languageModel === null || typeof languageModel !== 'object') {
      throw new TypeError(`The ${r.definition.label} provider definition returned no language model object (a model id string would go through the AI SDK gateway).`);
    }
    const init = { provider: r.plan.provider, model: r.plan.model, userUuid, credentialSource: source };
    if (usage === undefined) return new UserLlm({ ...init, languageModel });
    const binding = { meter: usage, target: { userUuid, provider: r.plan.provider, model: r.plan.model } };
    return new UserLlm({
      ...init,
      languageModel: meteredModel(languageModel, binding),
      loopModel: () => meteredModel(languageModel, binding, { toolCalls: 0, ended: undefined }),
    });
  }

  async function buildFromRef(r: Resolved, config: UserConfig, userUuid: string): Promise<UserLlm> {
    const resolved = await resolveCredentials!(r.ref!, { provider: r.plan.provider, userUuid });
    const shape = credentialsShapeProblem(resolved ?? null);
    if (shape !== undefined || resolved?.ref !== undefined || !hasWhatKindNeeds(r.definition.credentials, resolved ?? undefined)) {
      throw new MissingCredentialsError(
        `The stored credentials this configuration names do not hold what ${r.plan.provider} needs (${describeNeed(r.definition)}).`,
      );
    }
    return build(r, config, userUuid, resolved, 'user');
  }

  const registry: LlmRegistry = {
    providers: names,
    validate(config) {
      return resolve(config)?.plan ?? null;
    },
    create(config, userUuid) {
      const r = resolve(config);
      if (r === null) return null;
      if (r.ref !== undefined) return buildFromRef(r, config, userUuid);
      return build(r, config, userUuid, r.credentials!, r.plan.credentialSource as UserLlm['credentialSource']);
    },
    resource(opts = {}) {
      const extra = opts.alsoDependsOn ?? [];
      if (!Array.isArray(extra) || extra.some((f) => typeof f !== 'string' || f === '')) {
        throw new TypeError('resource({ alsoDependsOn }) must be an array of field names');
      }
      return {
        dependsOn: [...new Set<ConfigField>([...DEFAULT_DEPENDS_ON.llmInstance, ...extra])],
        create: (config, userUuid) => registry.create(config, userUuid),
        dispose: (client) => {
          if (UserLlm.is(client)) client.close();
        },
      };
    },
  };
  return Object.freeze(registry);
}

/**
 * The current user's LLM client, built by the registry for the configuration
 * this request reads (awaited when it is built asynchronously); `null` when
 * the user has chosen no provider. Throws the registry's
 * `LlmConfigurationError` when the configuration cannot be served.
 */
export async function getUserLlm(userUuid?: string): Promise<UserLlm | null> {
  const value: unknown = await getUserLlmInstance(userUuid);
  if (value === null || value === undefined) return null;
  if (!UserLlm.is(value)) {
    throw new TypeError('The llmInstance of this store is not built by a koa-user-context/ai registry: use resources: { llmInstance: registry.resource() }.');
  }
  return value;
}

function checkEntry(name: string, entry: ProviderEntry): Required<Omit<ProviderEntry, 'baseURL'>> & { baseURL: string | undefined } {
  const at = `options.providers[${JSON.stringify(name)}]`;
  if (entry === null || typeof entry !== 'object') throw new TypeError(`${at} must be an object { provider, models }`);
  for (const key of Object.keys(entry)) {
    if (!ENTRY_KEYS.has(key)) throw new TypeError(`${at}: unknown option "${key}"; known: ${[...ENTRY_KEYS].join(', ')}`);
  }
  const def = entry.provider;
  if (def === null || typeof def !== 'object' || typeof def.create !== 'function' || typeof def.label !== 'string') {
    throw new TypeError(`${at}.provider must be a provider definition, e.g. openai(createOpenAI) from koa-user-context/ai`);
  }
  if (!['apiKey', 'aws', 'none'].includes(def.credentials) || !Array.isArray(def.environment)) {
    throw new TypeError(`${at}.provider.credentials must be 'apiKey', 'aws' or 'none', and .environment an array`);
  }
  const { models, baseURL, allowedBaseURLs = [], useEnvironment = false } = entry;
  if (models !== '*' && (!Array.isArray(models) || models.length === 0 || models.some((m) => typeof m !== 'string' || m === ''))) {
    throw new TypeError(`${at}.models must be a non-empty array of model ids, or '*'`);
  }
  for (const url of [...(baseURL === undefined ? [] : [baseURL]), ...(Array.isArray(allowedBaseURLs) ? allowedBaseURLs : [null])]) {
    if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) {
      throw new TypeError(`${at}: base URLs must be http(s) URLs, got ${JSON.stringify(url)}`);
    }
  }
  if (typeof useEnvironment !== 'boolean') throw new TypeError(`${at}.useEnvironment must be a boolean`);
  return { provider: def, models: models === '*' ? '*' : Object.freeze([...models]), baseURL, allowedBaseURLs: Object.freeze([...allowedBaseURLs]), useEnvironment };
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
