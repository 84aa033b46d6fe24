/** The legacy process-wide APP_CONFIG / APP_STATE and the mirrorToLegacyGlobals migration aid. */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  APP_CONFIG,
  APP_STATE,
  ContextStore,
  configureUser,
  getUserLlmInstance,
  getUserProvider,
  getUserServerConfigs,
  runAsUser,
  setDefaultStore,
  setUserLlmInstance,
  type ContextStoreOptions,
} from '../src/index.js';
import { flush } from './support/app.js';
import { fakeClient } from './support/resources.js';

const stores: ContextStore[] = [];
function defaultStore(options: ContextStoreOptions = {}): ContextStore {
  const store = new ContextStore(options);
  stores.push(store);
  setDefaultStore(store);
  return store;
}
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function collectWarnings(fn: () => void): Promise<(Error & { code?: string })[]> {
  const warnings: (Error & { code?: string })[] = [];
  const listener = (w: Error & { code?: string }): void => void warnings.push(w);
  process.on('warning', listener);
  try {
    fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
  }
  return warnings;
}

describe('per-user writes and the legacy globals', () => {
  it('are not mirrored into APP_CONFIG / APP_STATE by default', async () => {
    const warnings = await collectWarnings(() => defaultStore());
    expect(warnings.filter((w) => w.code === 'KUC_LEGACY_MIRROR')).toEqual([]);
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Google', model: 'gemini', awsRegion: 'eu-west-1' });
      await setUserLlmInstance(fakeClient());
    });
    expect(APP_CONFIG.CURRENT_PROVIDER).toBeNull();
    expect(APP_CONFIG.CURRENT_MODEL).toBeNull();
    expect(APP_CONFIG.CURRENT_AWS_REGION).toBeNull();
    expect(APP_STATE.llm).toBeNull();
  });

  it('are mirrored with mirrorToLegacyGlobals, which warns once with KUC_LEGACY_MIRROR', async () => {
    const warnings = await collectWarnings(() => {
      defaultStore({ mirrorToLegacyGlobals: true });
      stores.push(new ContextStore({ mirrorToLegacyGlobals: true }));
    });
    const mirror = warnings.filter((w) => w.code === 'KUC_LEGACY_MIRROR');
    expect(mirror).toHaveLength(1);
    expect(mirror[0]!.message).toMatch(/APP_CONFIG/);

    const [a, b] = [randomUUID(), randomUUID()];
    await runAsUser(a, () => configureUser({ provider: 'Google', model: 'gemini' }));
    expect([APP_CONFIG.CURRENT_PROVIDER, APP_CONFIG.CURRENT_MODEL]).toEqual(['Google', 'gemini']);
    await runAsUser(b, () => configureUser({ provider: 'OpenAI' }));
    expect([APP_CONFIG.CURRENT_PROVIDER, APP_CONFIG.CURRENT_MODEL]).toEqual(['OpenAI', 'gemini']);
    // The users themselves stay isolated.
    expect(runAsUser(a, () => getUserProvider())).toBe('Google');
    expect(runAsUser(b, () => getUserProvider())).toBe('OpenAI');
  });

  it('a mirrored client is shared, and disposed once when both copies let go', async () => {
    const store = defaultStore({ mirrorToLegacyGlobals: true });
    const llm = fakeClient();
    const [a, b] = [randomUUID(), randomUUID()];
    await runAsUser(a, () => setUserLlmInstance(llm));
    expect(APP_STATE.llm).toBe(llm);
    await runAsUser(b, () => configureUser({ model: 'b-model' })); // the globals drop it, user a keeps it
    await flush();
    expect(APP_STATE.llm).toBeNull();
    expect(runAsUser(a, () => getUserLlmInstance())).toBe(llm);
    expect(llm.closed).toBe(0);
    await runAsUser(a, () => configureUser({ model: 'a-model' })); // now nobody holds it
    await flush();
    expect(llm.closed).toBe(1);
    await store.close();
    expect(llm.closed).toBe(1);
  });
});

describe('APP_CONFIG and APP_STATE', () => {
  it('read and write the process-wide context, never a user\'s', async () => {
    defaultStore();
    const id = randomUUID();
    APP_CONFIG.CURRENT_PROVIDER = 'Bedrock';
    APP_CONFIG.CURRENT_AZURE_DEPLOYMENT_DETAILS = { endpoint: 'https://az' };
    APP_STATE.server_configs = { s: { url: 'x' } };
    expect(APP_CONFIG.CURRENT_PROVIDER).toBe('Bedrock');
    expect(APP_CONFIG.CURRENT_AZURE_DEPLOYMENT_DETAILS).toEqual({ endpoint: 'https://az' });
    expect(runAsUser(id, () => [getUserProvider(), getUserServerConfigs()])).toEqual([null, {}]);
  });

  it('APP_STATE.llm owns the client: replacing it disposes the old one once', async () => {
    const store = defaultStore();
    const first = fakeClient();
    const second = fakeClient();
    APP_STATE.llm = first;
    expect(APP_STATE.llm).toBe(first);
    APP_STATE.llm = second;
    await flush();
    expect(first.closed).toBe(1);
    expect(runAsUser(randomUUID(), () => getUserLlmInstance())).toBeNull();
    await store.close();
    expect([first.closed, second.closed]).toEqual([1, 1]);
  });

  it('have exactly the seed\'s keys and accept no others', () => {
    defaultStore();
    expect(Object.keys(APP_CONFIG).sort()).toEqual([
      'CURRENT_AWS_REGION',
      'CURRENT_AZURE_DEPLOYMENT_DETAILS',
      'CURRENT_FRIENDLI_DETAILS',
      'CURRENT_MCP_SERVER_ID',
      'CURRENT_MCP_SERVER_NAME',
      'CURRENT_MODEL',
      'CURRENT_MODEL_PROVIDER_IN_PROFILE',
      'CURRENT_PROVIDER',
    ]);
    expect(Object.keys(APP_STATE).sort()).toEqual(['llm', 'mcp_client', 'server_configs']);
    expect(() => {
      (APP_CONFIG as unknown as Record<string, unknown>)['CURRENT_TEMPERATURE'] = 1;
    }).toThrow(TypeError);
  });
});
