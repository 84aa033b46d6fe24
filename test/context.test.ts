import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  InvalidContextValueError,
  configureUser,
  getUserRuntimeContext,
  getUserServerConfigs,
  isCredentialName,
  redactContext,
  runAsUser,
  setUserField,
  setUserServerConfigs,
  type ContextPatch,
  type UserRuntimeContext,
} from '../src/index.js';
import { CREDENTIAL_NAMES } from './support/credentials.js';
import { fakeClient } from './support/resources.js';

let store: ContextStore;
beforeEach(() => {
  store = new ContextStore();
});
afterEach(async () => {
  await store.close();
});

const asUser = <R>(fn: () => R, id = randomUUID()): R => runAsUser(id, fn, { store });

describe('configureUser rejects values that cannot be stored', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'Google'],
    ['a number', 42],
    ['an array', [{ provider: 'Google' }]],
  ])('a patch that is %s', async (_name, patch) => {
    await asUser(async () => {
      await expect(configureUser(patch as ContextPatch)).rejects.toBeInstanceOf(InvalidContextValueError);
    });
  });

  it.each<[string, unknown]>([
    ['a function', () => 'Google'],
    ['a symbol', Symbol('x')],
    ['a bigint', 10n],
    ['an object holding a function', { call: () => 1 }],
  ])('a field holding %s', async (_name, value) => {
    await asUser(async () => {
      const error = await configureUser({ serverConfigs: value } as ContextPatch).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidContextValueError);
      expect(error).toMatchObject({ code: 'ERR_INVALID_CONTEXT_VALUE' });
    });
  });

  it.each(['__proto__', 'constructor', 'prototype', 'userUuid', 'version', 'lastAccess'])(
    'the key %s',
    async (key) => {
      const patch = JSON.parse(`{"provider":"Google",${JSON.stringify(key)}:{"polluted":true}}`) as ContextPatch;
      await asUser(async () => {
        await expect(configureUser(patch)).rejects.toBeInstanceOf(InvalidContextValueError);
        expect(getUserRuntimeContext().provider).toBeNull(); // nothing of the patch was applied
      });
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    },
  );

  it('setters reject the same values', async () => {
    await asUser(async () => {
      await expect(setUserField('model', (() => 'x') as never)).rejects.toBeInstanceOf(InvalidContextValueError);
      expect(getUserRuntimeContext().version).toBe(0);
    });
  });
});

describe('committed configuration is deep-frozen and owned by the store', () => {
  it('is not changed by mutating the object passed in', async () => {
    const input = { servers: { main: { url: 'https://a.example', tags: ['x'] } } };
    await asUser(async () => {
      await setUserServerConfigs(input);
      input.servers.main.url = 'https://evil.example';
      input.servers.main.tags.push('y');
      expect(getUserServerConfigs()).toEqual({ servers: { main: { url: 'https://a.example', tags: ['x'] } } });
    });
  });

  it('cannot be mutated through what the getters return', async () => {
    await asUser(async () => {
      await configureUser({ azureDeploymentDetails: { endpoint: 'https://az', apiKey: 'k' }, serverConfigs: { a: { b: [1] } } });
      const configs = getUserServerConfigs() as { a: { b: number[] } };
      expect(Object.isFrozen(configs)).toBe(true);
      expect(Object.isFrozen(configs.a)).toBe(true);
      expect(Object.isFrozen(configs.a.b)).toBe(true);
      expect(() => configs.a.b.push(2)).toThrow(TypeError);
      expect(() => {
        (getUserRuntimeContext().azureDeploymentDetails as { endpoint: string }).endpoint = 'x';
      }).toThrow(TypeError);
      expect(getUserServerConfigs()).toEqual({ a: { b: [1] } });
    });
  });

  it('does not share the defaults object between users or with the caller', async () => {
    const defaults = { serverConfigs: { shared: { n: 1 } } };
    const own = new ContextStore({ defaults });
    try {
      defaults.serverConfigs.shared.n = 2;
      const a = randomUUID();
      const b = randomUUID();
      const seenByA = runAsUser(a, () => getUserServerConfigs(), { store: own }) as { shared: { n: number } };
      expect(seenByA).toEqual({ shared: { n: 1 } });
      expect(() => {
        seenByA.shared.n = 3;
      }).toThrow(TypeError);
      await runAsUser(a, () => setUserServerConfigs({ shared: { n: 4 } }), { store: own });
      expect(runAsUser(b, () => getUserServerConfigs(), { store: own })).toEqual({ shared: { n: 1 } });
    } finally {
      await own.close();
    }
  });
});

describe('redactContext', () => {
  it('hides apiKey, token and other secret-looking fields, and reduces live clients to a flag', async () => {
    const view = await asUser(async () => {
      await configureUser({
        provider: 'Azure',
        azureDeploymentDetails: { endpoint: 'https://az', deploymentName: 'd', apiKey: 'sk-azure-secret' },
        friendliDetails: { endpointUrl: 'https://fr', token: 'flp-secret' },
        serverConfigs: { db: { password: 'hunter2', user: 'bob' }, list: [{ secret: 's3' }] },
        llmInstance: fakeClient(),
      });
      return getUserRuntimeContext();
    });
    const redacted = redactContext(view);
    const text = JSON.stringify(redacted);
    for (const secret of ['sk-azure-secret', 'flp-secret', 'hunter2', 's3']) expect(text).not.toContain(secret);
    expect(redacted).toMatchObject({
      provider: 'Azure',
      azureDeploymentDetails: { endpoint: 'https://az', deploymentName: 'd', apiKey: '[redacted]' },
      friendliDetails: { endpointUrl: 'https://fr', token: '[redacted]' },
      serverConfigs: { db: { password: '[redacted]', user: 'bob' }, list: [{ secret: '[redacted]' }] },
      llmInstance: '[live]',
      mcpClient: null,
      lastAccess: view.lastAccess.toISOString(),
    });
    // The view itself is untouched.
    expect(view.azureDeploymentDetails?.apiKey).toBe('sk-azure-secret');
  });

  it('gives the same answers once the names it has seen outnumber what it remembers (users choose serverConfigs keys)', () => {
    const before = CREDENTIAL_NAMES.map((name) => isCredentialName(name));
    expect(before.every(Boolean)).toBe(true);
    // Far more distinct names than the name rule keeps answers for, credential-like ones among them.
    for (let i = 0; i < 5000; i++) {
      expect(isCredentialName(`column${i}`), `column${i}`).toBe(false);
      expect(isCredentialName(`db${i}Password`), `db${i}Password`).toBe(true);
    }
    expect(CREDENTIAL_NAMES.filter((name) => !isCredentialName(name))).toEqual([]);
    for (const harmless of ['provider', 'model', 'keyId', 'compat', 'passThrough', 'authority']) expect(isCredentialName(harmless), harmless).toBe(false);
    // Names longer than what it remembers are answered all the same.
    expect(isCredentialName(`${'x'.repeat(100)}_password`)).toBe(true);
    expect(isCredentialName(`${'x'.repeat(100)}_column`)).toBe(false);
    const view = redactContext({ ...asView(), serverConfigs: { db: { column7: 'x', db7Password: 'hunter2', apiKey: 'sk' } } });
    expect(view['serverConfigs']).toEqual({ db: { column7: 'x', db7Password: '[redacted]', apiKey: '[redacted]' } });
  });
});

function asView(): UserRuntimeContext {
  return asUser(() => getUserRuntimeContext());
}
