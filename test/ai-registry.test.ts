/**
 * koa-user-context/ai on the real AI SDK provider packages (and the raw
 * openai / @anthropic-ai/sdk clients), against the local wire server: every
 * provider gets the user's own key and model, a configuration that lacks
 * what its provider needs is refused before any call, the environment is used
 * only by opt-in, and an aborted scope stops the provider's stream.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createAmazonBedrock } from '@ai-sdk/amazon-bedrock';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createAzure } from '@ai-sdk/azure';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import OpenAI from 'openai';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import {
  anthropic,
  azure,
  bedrock,
  createLlmRegistry,
  friendli,
  getUserLlm,
  google,
  ollama,
  openai,
  UserLlm,
  type LlmRegistry,
} from '../src/ai.js';
import {
  BaseUrlNotAllowedError,
  DEFAULT_DEPENDS_ON,
  InvalidProviderSettingsError,
  LlmClientClosedError,
  LlmConfigurationError,
  MissingCredentialsError,
  ModelNotAllowedError,
  ProviderNotAllowedError,
  configureUser,
  getUserLlmInstance,
  runAsUser,
  runWithProfile,
  type ContextPatch,
  type ContextStore,
  type UserConfig,
} from '../src/index.js';
import { useStores } from './support/stores.js';

let wire: WireServer;
beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 3, words: 40 });
});
afterAll(async () => {
  await wire.close();
});
beforeEach(() => wire.reset());

const newStore = useStores();
const key = (label: string): string => `${label}-${randomUUID()}`;

/** Every built-in provider, with what a user configures for it and where it lands on the wire. */
const CASES: Array<{ name: string; patch: (apiKey: string) => ContextPatch; label: string; model: string }> = [
  { name: 'OpenAI', label: 'openai', model: 'gpt-4o-mini', patch: (apiKey) => ({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey } }) },
  { name: 'Anthropic', label: 'anthropic', model: 'claude-3-5-haiku', patch: (apiKey) => ({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey } }) },
  { name: 'Google', label: 'google', model: 'gemini-2.5-flash', patch: (apiKey) => ({ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { apiKey } }) },
  {
    name: 'Amazon (API key)', label: 'bedrock', model: 'amazon.nova-lite-v1:0',
    patch: (apiKey) => ({ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', awsRegion: 'eu-west-1', llmCredentials: { apiKey } }),
  },
  {
    name: 'Amazon (SigV4 key pair)', label: 'bedrock', model: 'amazon.nova-lite-v1:0',
    patch: (apiKey) => ({ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', awsRegion: 'us-east-1', llmCredentials: { accessKeyId: apiKey, secretAccessKey: `s-${apiKey}` } }),
  },
  {
    name: 'Azure', label: 'azure', model: 'gpt-4o-prod',
    patch: (apiKey) => ({ provider: 'Azure', model: 'gpt-4o-prod', azureDeploymentDetails: { apiVersion: '2024-10-21' }, llmCredentials: { apiKey } }),
  },
  { name: 'Friendli', label: 'friendli', model: 'meta-llama-3.1-8b-instruct', patch: (apiKey) => ({ provider: 'Friendli', model: 'meta-llama-3.1-8b-instruct', llmCredentials: { apiKey } }) },
  { name: 'Ollama', label: 'ollama', model: 'llama3.2', patch: (apiKey) => ({ provider: 'Ollama', model: 'llama3.2', llmCredentials: { apiKey } }) },
];

function storeWith(registry: LlmRegistry): ContextStore {
  return newStore({ resources: { llmInstance: registry.resource() } });
}

describe('provider registry on the AI SDK', () => {
  it.each(CASES)('$name: the user\'s own key and model reach the wire, without and with streaming', async ({ patch, label, model }) => {
    const store = storeWith(exampleLlmRegistry(wire.url));
    const users = [randomUUID(), randomUUID()].map((uuid) => ({ uuid, key: key(label) }));
    await Promise.all(users.map(async (u) => {
      await runAsUser(u.uuid, async () => {
        await configureUser(patch(u.key));
        const llm = (await getUserLlm())!;
        expect(llm).toBeInstanceOf(UserLlm);
        const whole = await llm.generateText({ prompt: `whole ${u.uuid}` });
        expect(whole.text).toContain(`key:${keyFingerprint(u.key)}`);
        let streamed = '';
        for await (const part of llm.streamText({ prompt: `stream ${u.uuid}` }).textStream) streamed += part;
        expect(streamed).toContain(`[${label}/${model} key:${keyFingerprint(u.key)}]`);
      }, { store });
    }));
    expect(wire.calls).toHaveLength(4);
    for (const call of wire.calls) {
      const u = users.find((x) => call.prompt.includes(x.uuid))!;
      expect({ label: call.label, model: call.model, key: call.keyHash, finished: call.finished })
        .toEqual({ label, model, key: keyFingerprint(u.key), finished: true });
    }
    expect(wire.calls.filter((c) => c.stream)).toHaveLength(2);
  });

  it.each(CASES)('$name: aborting the scope\'s signal stops the provider\'s stream', async ({ patch }) => {
    const store = storeWith(exampleLlmRegistry(wire.url));
    const controller = new AbortController();
    const seen = await runAsUser(randomUUID(), async () => {
      await configureUser(patch(key('abort')));
      const llm = (await getUserLlm())!;
      // No abortSignal passed: the client uses the scope's (the request's) signal.
      const result = llm.streamText({ prompt: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ') });
      let parts = 0;
      try {
        for await (const part of result.textStream) {
          if (part !== '' && ++parts === 2) controller.abort();
        }
      } catch {
        // Some providers end the stream with the abort error; either way it stops.
      }
      return parts;
    }, { store, signal: controller.signal });
    expect(seen).toBeGreaterThanOrEqual(2);
    expect(wire.calls).toHaveLength(1);
    const call = await wire.settled(wire.calls[0]!.id);
    expect(call.aborted).toBe(true);
    expect(call.finished).toBe(false);
  });

  it('refuses a configuration that lacks what its provider needs, before any call, with a stable code', async () => {
    vi.stubEnv('OPENAI_API_KEY', 'sk-operator-key-must-not-be-used');
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-operator-anthropic');
    vi.stubEnv('AWS_BEARER_TOKEN_BEDROCK', 'operator-bedrock');
    const registry = exampleLlmRegistry(wire.url);
    const secretKey = key('never-in-a-message');
    const cases: Array<[Partial<UserConfig>, typeof LlmConfigurationError, string]> = [
      [{ provider: 'OpenAI', model: 'gpt-4o-mini' }, MissingCredentialsError, 'missing_credentials'],
      [{ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: {} }, InvalidProviderSettingsError, 'invalid_provider_settings'],
      [{ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', awsRegion: 'us-east-1', llmCredentials: { accessKeyId: secretKey } }, MissingCredentialsError, 'missing_credentials'],
      [{ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', llmCredentials: { apiKey: secretKey } }, InvalidProviderSettingsError, 'invalid_provider_settings'],
      [{ provider: 'OpenAI', model: 'gpt-5-secret', llmCredentials: { apiKey: secretKey } }, ModelNotAllowedError, 'model_not_allowed'],
      [{ provider: 'OpenAI', model: null, llmCredentials: { apiKey: secretKey } }, InvalidProviderSettingsError, 'invalid_provider_settings'],
      [{ provider: 'Mistral', model: 'x', llmCredentials: { apiKey: secretKey } }, ProviderNotAllowedError, 'provider_not_allowed'],
      [{ provider: 'Azure', model: 'gpt-4o-prod', azureDeploymentDetails: { endpoint: 'http://169.254.169.254/openai' }, llmCredentials: { apiKey: secretKey } }, BaseUrlNotAllowedError, 'base_url_not_allowed'],
      [{ provider: 'Friendli', model: 'meta-llama-3.1-8b-instruct', friendliDetails: { endpointUrl: 'https://evil.example/v1' }, llmCredentials: { apiKey: secretKey } }, BaseUrlNotAllowedError, 'base_url_not_allowed'],
      [{ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { ref: 'vault://users/1' } }, MissingCredentialsError, 'missing_credentials'],
      [{ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { apiKey: `${secretKey}\r\nx-evil: 1` } }, InvalidProviderSettingsError, 'invalid_provider_settings'],
      [{ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { key: secretKey } as never }, InvalidProviderSettingsError, 'invalid_provider_settings'],
    ];
    const store = storeWith(registry);
    for (const [fields, cls, error] of cases) {
      const config = { ...store.currentGeneration(randomUUID()).config, ...fields } as UserConfig;
      let thrown: unknown;
      try {
        registry.validate(config);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, JSON.stringify(fields)).toBeInstanceOf(cls);
      const err = thrown as LlmConfigurationError;
      expect({ status: err.status, error: err.error }).toEqual({ status: 400, error });
      expect(err.message).not.toContain(secretKey);
      expect(err.message).not.toContain('sk-operator');
      // Building the client fails the same way, through the store's getter.
      await runAsUser(randomUUID(), async () => {
        await configureUser(fields as ContextPatch);
        await expect(Promise.resolve().then(() => getUserLlmInstance())).rejects.toBeInstanceOf(cls);
      }, { store });
    }
    expect(wire.calls).toEqual([]);
  });

  it('never sends a key to a provider it was not made for (a profile switching provider gets none)', async () => {
    const store = storeWith(exampleLlmRegistry(wire.url));
    const openaiKey = key('sk-openai-only');
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey: openaiKey, provider: 'OpenAI' } });
      await (await getUserLlm())!.generateText({ prompt: 'mine' });
      const switched = runWithProfile({ tag: '@fast', provider: 'Anthropic', model: 'claude-3-5-haiku' }, () => getUserLlm());
      const err = await switched.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(MissingCredentialsError);
      expect((err as Error).message).toMatch(/for OpenAI, not Anthropic/);
      expect((err as Error).message).not.toContain(openaiKey);
      // Ollama needs no key, and does not get this one either.
      const local = await runWithProfile({ provider: 'Ollama', model: 'llama3.2' }, async () => (await getUserLlm())!.generateText({ prompt: 'local' }));
      expect(local.text).toContain('key:null');
    }, { store });
    expect(wire.calls.map((c) => [c.label, c.keyHash])).toEqual([['openai', keyFingerprint(openaiKey)], ['ollama', null]]);
  });

  it('uses the server\'s environment key only for a provider the operator opted in, and says so', async () => {
    const operatorKey = key('sk-operator');
    vi.stubEnv('OPENAI_API_KEY', operatorKey);
    vi.stubEnv('ANTHROPIC_API_KEY', key('sk-ant-operator'));
    const registry = exampleLlmRegistry(wire.url, { useEnvironment: ['OpenAI'] });
    const store = storeWith(registry);
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini' });
      const llm = (await getUserLlm())!;
      expect(llm.credentialSource).toBe('environment');
      await llm.generateText({ prompt: 'on the house' });
      // Not opted in: Anthropic refuses, although ANTHROPIC_API_KEY is set.
      await configureUser({ provider: 'Anthropic', model: 'claude-3-5-haiku' });
      await expect(getUserLlm()).rejects.toBeInstanceOf(MissingCredentialsError);
    }, { store });
    expect(wire.calls.map((c) => [c.label, c.keyHash])).toEqual([['openai', keyFingerprint(operatorKey)]]);
  });

  it('resolves a credentials reference once per configuration, asynchronously', async () => {
    const vault = new Map([['vault://alice', key('sk-alice')], ['vault://bob', key('sk-bob')]]);
    const lookups: string[] = [];
    const registry = exampleLlmRegistry(wire.url, {
      resolveCredentials: async (ref) => {
        lookups.push(ref);
        await new Promise((r) => setTimeout(r, 5));
        const apiKey = vault.get(ref);
        return apiKey === undefined ? {} : { apiKey };
      },
    });
    const store = storeWith(registry);
    const user = randomUUID();
    await runAsUser(user, async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { ref: 'vault://alice' } });
      await Promise.all([1, 2, 3].map(async (i) => (await getUserLlm())!.generateText({ prompt: `alice ${i}` })));
      await configureUser({ llmCredentials: { ref: 'vault://bob' } });
      await (await getUserLlm())!.generateText({ prompt: 'bob' });
      await configureUser({ llmCredentials: { ref: 'vault://nobody' } });
      await expect(getUserLlm()).rejects.toBeInstanceOf(MissingCredentialsError);
    }, { store });
    expect(lookups).toEqual(['vault://alice', 'vault://bob', 'vault://nobody']);
    expect(wire.calls.map((c) => c.keyHash)).toEqual([
      ...Array(3).fill(keyFingerprint(vault.get('vault://alice')!)),
      keyFingerprint(vault.get('vault://bob')!),
    ]);
  });

  it('takes the seed\'s Azure and Friendli fields: an allowed endpoint, the deployment, the key kept in the details', async () => {
    const registry = createLlmRegistry({
      providers: {
        Azure: { provider: azure(createAzure), models: ['gpt-4o-prod'], allowedBaseURLs: [`${wire.url}/azure/openai`] },
        Friendli: { provider: friendli(createOpenAICompatible), models: '*', baseURL: `${wire.url}/friendli/v1` },
      },
    });
    const store = storeWith(registry);
    const azureKey = key('az');
    const friendliToken = key('flp');
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Azure', model: 'gpt-4o-prod', azureDeploymentDetails: { endpoint: `${wire.url}/azure/openai/`, deploymentName: 'gpt-4o-prod', apiKey: azureKey } });
      await (await getUserLlm())!.generateText({ prompt: 'azure' });
      await configureUser({ provider: 'Friendli', model: null, friendliDetails: { modelId: 'mixtral', token: friendliToken } });
      const llm = (await getUserLlm())!;
      expect(llm.model).toBe('mixtral');
      await llm.generateText({ prompt: 'friendli' });
    }, { store });
    expect(wire.calls.map((c) => [c.label, c.model, c.keyHash])).toEqual([
      ['azure', 'gpt-4o-prod', keyFingerprint(azureKey)],
      ['friendli', 'mixtral', keyFingerprint(friendliToken)],
    ]);
  });

  it('an Ollama user needs no key', async () => {
    const store = storeWith(exampleLlmRegistry(wire.url));
    const text = await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Ollama', model: 'llama3.2' });
      const llm = (await getUserLlm())!;
      expect(llm.credentialSource).toBe('none');
      return (await llm.generateText({ prompt: 'local' })).text;
    }, { store });
    expect(text).toMatch(/^\[ollama\/llama3\.2 key:null\]/);
  });

  it('apps register their own provider definitions', async () => {
    const registry = createLlmRegistry({
      providers: {
        Corp: {
          provider: {
            label: 'Corp gateway',
            credentials: 'apiKey',
            environment: [],
            create: ({ model, credentials, fetch }) => createOpenAI({ apiKey: credentials.apiKey!, baseURL: `${wire.url}/corp/v1`, ...(fetch ? { fetch } : {}) }).chat(model),
          },
          models: ['corp-1'],
        },
      },
    });
    const store = storeWith(registry);
    const corpKey = key('corp');
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Corp', model: 'corp-1', llmCredentials: { apiKey: corpKey } });
      await (await getUserLlm())!.generateText({ prompt: 'custom' });
    }, { store });
    expect(wire.calls.map((c) => [c.label, c.model, c.keyHash])).toEqual([['corp', 'corp-1', keyFingerprint(corpKey)]]);
  });

  it('validates its options once, naming the bad option', () => {
    const entry = { provider: openai(createOpenAI), models: ['m'] };
    expect(() => createLlmRegistry({ providers: {} })).toThrow(/options\.providers/);
    expect(() => createLlmRegistry({ providers: { A: entry }, fallback: true } as never)).toThrow(/unknown option "fallback"/);
    expect(() => createLlmRegistry({ providers: { A: { ...entry, baseUrl: 'x' } as never } })).toThrow(/unknown option "baseUrl"/);
    expect(() => createLlmRegistry({ providers: { A: { ...entry, models: [] } } })).toThrow(/models/);
    expect(() => createLlmRegistry({ providers: { A: { ...entry, baseURL: 'file:///etc' } } })).toThrow(/base URLs/);
    expect(() => createLlmRegistry({ providers: { A: { provider: {} as never, models: '*' } } })).toThrow(/provider definition/);
    expect(() => createLlmRegistry({ providers: { A: entry }, resolveCredentials: 'vault' as never })).toThrow(/resolveCredentials/);
    expect(() => exampleLlmRegistry(wire.url).resource({ alsoDependsOn: [3 as never] })).toThrow(/alsoDependsOn/);
  });

  it('rebuilds on a change of any default dependency (llmCredentials included) or an app field added to them', async () => {
    expect(DEFAULT_DEPENDS_ON.llmInstance).toContain('llmCredentials');
    const registry = exampleLlmRegistry(wire.url);
    const spec = registry.resource({ alsoDependsOn: ['serverConfigs'] });
    expect(spec.dependsOn).toEqual([...DEFAULT_DEPENDS_ON.llmInstance, 'serverConfigs']);
    const store = newStore({ resources: { llmInstance: spec } });
    const clients = await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey: key('one') } });
      const first = await getUserLlm();
      await configureUser({ mcpServerName: 'crm' }); // not a dependency: same client
      const same = await getUserLlm();
      await configureUser({ llmCredentials: { apiKey: key('two') } });
      const rotated = await getUserLlm();
      await configureUser({ serverConfigs: { region: 'eu' } });
      const appField = await getUserLlm();
      return [first, same, rotated, appField];
    }, { store });
    expect(clients[1]).toBe(clients[0]);
    expect(clients[2]).not.toBe(clients[0]);
    expect(clients[3]).not.toBe(clients[2]);
    await store.close();
    expect(clients.map((c) => c!.closed)).toEqual([true, true, true, true]);
    expect(() => clients[0]!.generateText({ prompt: 'late' })).toThrow(LlmClientClosedError);
  });

  it('never prints a credential when a client is logged or serialised', async () => {
    const store = storeWith(exampleLlmRegistry(wire.url));
    const secret = key('sk-print');
    const llm = await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey: secret } });
      return (await getUserLlm())!;
    }, { store });
    expect(inspect(llm, { depth: 10 })).not.toContain(secret);
    expect(JSON.stringify(llm)).not.toContain(secret);
    expect(inspect(llm.languageModel, { depth: 10, showHidden: true })).not.toContain(secret);
  });
});

describe('raw SDK clients built per user in create()', () => {
  it('openai and @anthropic-ai/sdk clients are rebuilt when the user\'s key rotates (llmCredentials is a default dependency)', async () => {
    const built: string[] = [];
    const store = newStore({
      resources: {
        llmInstance: {
          create: (config) => {
            const apiKey = config.llmCredentials?.apiKey;
            if (apiKey === undefined) return null;
            built.push(`${config.provider}:${keyFingerprint(apiKey)}`);
            return config.provider === 'OpenAI'
              ? new OpenAI({ apiKey, baseURL: `${wire.url}/openai/v1`, maxRetries: 0 })
              : new Anthropic({ apiKey, baseURL: `${wire.url}/anthropic`, maxRetries: 0 });
          },
        },
      },
    });
    const keys = [key('sk-raw-1'), key('sk-raw-2'), key('sk-ant-raw')];
    await runAsUser(randomUUID(), async () => {
      const ask = async (prompt: string): Promise<void> => {
        const client = getUserLlmInstance() as OpenAI | Anthropic;
        if (client instanceof OpenAI) await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
        else await client.messages.create({ model: 'claude-3-5-haiku', max_tokens: 50, messages: [{ role: 'user', content: prompt }] });
      };
      await configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey: keys[0]! } });
      await ask('first');
      await configureUser({ llmCredentials: { apiKey: keys[1]! } });
      await ask('rotated');
      await configureUser({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey: keys[2]! } });
      await ask('switched');
    }, { store });
    expect(built).toEqual([`OpenAI:${keyFingerprint(keys[0]!)}`, `OpenAI:${keyFingerprint(keys[1]!)}`, `Anthropic:${keyFingerprint(keys[2]!)}`]);
    expect(wire.calls.map((c) => [c.label, c.keyHash])).toEqual(keys.map((k, i) => [i < 2 ? 'openai' : 'anthropic', keyFingerprint(k)]));
  });
});

describe('built-in definitions without the example registry', () => {
  it('each built-in takes its SDK factory and the operator\'s base URL', async () => {
    const registry = createLlmRegistry({
      providers: {
        OpenAI: { provider: openai(createOpenAI), models: '*', baseURL: `${wire.url}/openai/v1` },
        Anthropic: { provider: anthropic(createAnthropic), models: '*', baseURL: `${wire.url}/anthropic/v1` },
        Google: { provider: google(createGoogleGenerativeAI), models: '*', baseURL: `${wire.url}/google/v1beta` },
        Amazon: { provider: bedrock(createAmazonBedrock), models: '*', baseURL: `${wire.url}/bedrock` },
        Ollama: { provider: ollama(createOpenAICompatible), models: '*', baseURL: `${wire.url}/ollama/v1` },
      },
    });
    expect(registry.providers).toEqual(['OpenAI', 'Anthropic', 'Google', 'Amazon', 'Ollama']);
    expect(registry.validate({ provider: 'Amazon', model: 'm', awsRegion: 'ap-southeast-2', llmCredentials: { apiKey: 'k' } } as UserConfig))
      .toEqual({ provider: 'Amazon', model: 'm', baseURL: `${wire.url}/bedrock`, credentialSource: 'user' });
    expect(registry.validate({ provider: null } as UserConfig)).toBeNull();
  });
});

describe('packaging', () => {
  /** Every bare package the module graph of `entry` imports (statically or dynamically), following relative imports. */
  function packagesReachedFrom(entry: string): Set<string> {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2]!;
        if (/^(?:import|export)\s+type\s/.test(m[0].trim())) continue;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    };
    visit(resolve(entry));
    return packages;
  }

  it('the root entry never loads ai or @ai-sdk/*; koa-user-context/ai loads ai and neither a provider package nor the MCP SDK', () => {
    const root = packagesReachedFrom('src/index.ts');
    expect(root.has('lru-cache')).toBe(true); // the walk does reach the root's dependencies
    expect([...root].filter((p) => p === 'ai' || p.startsWith('@ai-sdk/'))).toEqual([]);
    const sub = packagesReachedFrom('src/ai.ts');
    expect(sub.has('ai')).toBe(true);
    // Provider packages are loaded by the app (it passes their factories), never by the subpath.
    expect([...sub].filter((p) => p.startsWith('@ai-sdk/'))).toEqual([]);
    // getUserTools() recognises MCP connections by their brand: /ai without the MCP SDK installed still loads.
    expect(sub.has('@modelcontextprotocol/sdk')).toBe(false);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      exports: Record<string, unknown>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    const ai = pkg.exports['./ai'] as Record<string, Record<string, string>>;
    expect(Object.keys(ai)).toEqual(['import', 'require']);
    expect(Object.keys(ai['import']!)[0]).toBe('types');
    expect(Object.keys(ai['require']!)[0]).toBe('types');
    for (const peer of ['ai', '@ai-sdk/openai', '@ai-sdk/anthropic', '@ai-sdk/google', '@ai-sdk/openai-compatible', '@ai-sdk/azure', '@ai-sdk/amazon-bedrock']) {
      expect(pkg.peerDependencies[peer], peer).toBeDefined();
      expect(pkg.peerDependenciesMeta[peer]?.optional, peer).toBe(true);
    }
  });
});
