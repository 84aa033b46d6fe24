/**
 * The built-in field table is the one place fields are listed: defaults,
 * resource dependencies, legacy names, helpers, secret fields, redaction and
 * the Redis store's default secretFields all derive from it.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';
import { BUILTIN_FIELDS, BUILTIN_FIELD_NAMES, DEFAULT_DEPENDS_ON, RESOURCES, SECRET_FIELD_NAMES } from '../src/context/fields.js';
import { LEGACY_CONFIG_FIELDS, LEGACY_STATE_FIELDS } from '../src/compat/legacy.js';

describe('the built-in field table', () => {
  it('gives every field a default that a new context starts with', async () => {
    const store = new api.ContextStore();
    const user = randomUUID();
    const view = await api.runAsUser(user, () => api.getUserRuntimeContext(), { store });
    for (const name of BUILTIN_FIELD_NAMES) expect(view[name]).toEqual(BUILTIN_FIELDS[name].default);
    await store.close();
  });

  it('derives each resource\'s default dependsOn from the fields that name it', () => {
    for (const [resource, fields] of Object.entries(DEFAULT_DEPENDS_ON)) {
      expect([...fields].sort()).toEqual(BUILTIN_FIELD_NAMES.filter((f) => BUILTIN_FIELDS[f].usedBy === resource).sort());
    }
    expect(DEFAULT_DEPENDS_ON.llmInstance).toContain('provider');
    expect(DEFAULT_DEPENDS_ON.mcpClient).toContain('mcpServerName');
  });

  it('changing any field a resource depends on drops that resource, and no other field does', async () => {
    const store = new api.ContextStore();
    const user = randomUUID();
    for (const name of BUILTIN_FIELD_NAMES) {
      await api.runAsUser(user, () => api.configureUser({ llmInstance: { id: name }, mcpClient: { id: name } } as never), { store });
      const value = name === 'serverConfigs' ? { changed: true } : name.endsWith('Details') ? { endpoint: 'x' } : `changed-${name}`;
      const view = await api.runAsUser(user, () => api.configureUser({ [name]: value } as never), { store });
      const usedBy = BUILTIN_FIELDS[name].usedBy;
      expect(view.llmInstance === null, `${name} → llmInstance`).toBe(usedBy === 'llmInstance');
      expect(view.mcpClient === null, `${name} → mcpClient`).toBe(usedBy === 'mcpClient');
    }
    await store.close();
  });

  it('names a helper pair for every field and resource, and each exists at the root entry', () => {
    const accessors = [...BUILTIN_FIELD_NAMES.map((f) => BUILTIN_FIELDS[f].accessor), ...Object.values(RESOURCES).map((r) => r.accessor)];
    for (const accessor of accessors) {
      expect(typeof (api as Record<string, unknown>)[`get${accessor}`], `get${accessor}`).toBe('function');
      expect(typeof (api as Record<string, unknown>)[`set${accessor}`], `set${accessor}`).toBe('function');
    }
  });

  it('derives the legacy APP_CONFIG / APP_STATE names, and every legacy name reaches its field', () => {
    expect(Object.keys(api.APP_CONFIG).sort()).toEqual(Object.keys(LEGACY_CONFIG_FIELDS).sort());
    expect(Object.keys(api.APP_STATE).sort()).toEqual(Object.keys(LEGACY_STATE_FIELDS).sort());
    expect(LEGACY_CONFIG_FIELDS.CURRENT_PROVIDER).toBe('provider');
    expect(LEGACY_STATE_FIELDS.llm).toBe('llmInstance');
    expect(LEGACY_STATE_FIELDS.server_configs).toBe('serverConfigs');
  });

  it('redacts every secret field by its spec in views that leave the process', () => {
    const view = {
      ...BUILTIN_FIELDS,
      provider: 'Azure',
      azureDeploymentDetails: { endpoint: 'https://a.example', deploymentName: 'd', apiKey: 'sk-azure-1' },
      friendliDetails: { endpointUrl: 'https://f.example', token: 'flp-2' },
      serverConfigs: { crm: { url: 'https://crm', headers: { Authorization: 'Bearer crm-3' } } },
      llmInstance: {},
      mcpClient: null,
      userUuid: randomUUID(),
      lastAccess: new Date(0),
      version: 1,
    } as unknown as api.UserRuntimeContext;
    const out = JSON.stringify(api.redactContext(view));
    for (const secret of ['sk-azure-1', 'flp-2', 'crm-3']) expect(out).not.toContain(secret);
    expect(out).toContain('https://a.example');
    expect(out).toContain('"llmInstance":"[live]"');
  });

  it('gives the Redis store its default secretFields: every field that may hold a credential is encrypted', async () => {
    expect([...SECRET_FIELD_NAMES].sort()).toEqual(BUILTIN_FIELD_NAMES.filter((f) => BUILTIN_FIELDS[f].secret !== null).sort());
    const { RedisContextStore } = await import('../src/redis.js');
    // Without an encryption key the store refuses to start, naming exactly the secret fields.
    expect(() => new RedisContextStore({ redis: 'redis://127.0.0.1:1', keyPrefix: 'x:', lazyConnect: true } as never)).toThrow(
      new RegExp(SECRET_FIELD_NAMES.join(', ')),
    );
  });
});
