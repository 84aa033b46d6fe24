import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  APP_CONFIG,
  InvalidUserIdError,
  UserContextMissingError,
  configureUser,
  currentUserClaims,
  currentUserUuid,
  getUserAwsRegion,
  getUserAzureDeploymentDetails,
  getUserField,
  getUserFriendliDetails,
  getUserLastAccess,
  getUserLlmInstance,
  getUserMcpClient,
  getUserMcpServerId,
  getUserMcpServerName,
  getUserModel,
  getUserModelProviderInProfile,
  getUserProvider,
  getUserRuntimeContext,
  getUserServerConfigs,
  runAsUser,
  setUserAwsRegion,
  setUserAzureDeploymentDetails,
  setUserField,
  setUserFriendliDetails,
  setUserLlmInstance,
  setUserMcpClient,
  setUserMcpServerId,
  setUserMcpServerName,
  setUserModel,
  setUserModelProviderInProfile,
  setUserProvider,
  setUserServerConfigs,
} from '../src/index.js';
import { fakeClient } from './support/resources.js';
import { useStores } from './support/stores.js';

const defaultStore = useStores({ asDefault: true });

const readers: [string, () => unknown][] = [
  ['getUserProvider', () => getUserProvider()],
  ['getUserModel', () => getUserModel()],
  ['getUserMcpServerName', () => getUserMcpServerName()],
  ['getUserServerConfigs', () => getUserServerConfigs()],
  ['getUserLlmInstance', () => getUserLlmInstance()],
  ['getUserMcpClient', () => getUserMcpClient()],
  ['getUserRuntimeContext', () => getUserRuntimeContext()],
  ['getUserField', () => getUserField('awsRegion')],
  ['getUserLastAccess', () => getUserLastAccess()],
];
const writers: [string, () => Promise<unknown>][] = [
  ['setUserProvider', () => setUserProvider('Google')],
  ['setUserModel', () => setUserModel('gemini')],
  ['configureUser', () => configureUser({ provider: 'Google', model: 'gemini' })],
  ['setUserField', () => setUserField('awsRegion', 'eu-west-1')],
  ['setUserLlmInstance', () => setUserLlmInstance(fakeClient())],
  ['setUserMcpClient', () => setUserMcpClient(fakeClient('mcp'))],
];

describe('outside any scope in multi-user mode', () => {
  it.each(readers)('%s throws UserContextMissingError', (name, read) => {
    defaultStore({ mode: 'multi-user' });
    let error: unknown;
    try {
      read();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UserContextMissingError);
    expect(error).toMatchObject({ code: 'ERR_USER_CONTEXT_MISSING', name: 'UserContextMissingError' });
    expect((error as Error).message).toContain('runAsUser');
    expect((error as Error).message).toContain(name === 'getUserLastAccess' ? 'getUserRuntimeContext' : name);
  });

  it.each(writers)('%s rejects with UserContextMissingError and writes nothing', async (_name, write) => {
    const store = defaultStore({ mode: 'multi-user' });
    const error = await write().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserContextMissingError);
    expect(error).toMatchObject({ code: 'ERR_USER_CONTEXT_MISSING' });
    expect((error as Error).message).toMatch(/runAsUser/);
    expect(store.globalGeneration().version).toBe(0);
    expect(store.size).toBe(0);
  });

  it('currentUserUuid and currentUserClaims are undefined', () => {
    defaultStore({ mode: 'multi-user' });
    expect(currentUserUuid()).toBeUndefined();
    expect(currentUserClaims()).toBeUndefined();
  });

  it("outsideScope: 'global' falls back to the process-wide context", async () => {
    const store = defaultStore({ mode: 'multi-user', outsideScope: 'global' });
    await setUserProvider('Bedrock');
    expect(getUserProvider()).toBe('Bedrock');
    expect(APP_CONFIG.CURRENT_PROVIDER).toBe('Bedrock');
    expect(store.size).toBe(0);
    // A user scope still reads its own context.
    expect(runAsUser(randomUUID(), () => getUserProvider())).toBeNull();
  });
});

describe('outside any scope in single-user mode', () => {
  it('uses the process-wide context, the one APP_CONFIG shows', async () => {
    const store = defaultStore({ mode: 'single-user' });
    await setUserProvider('Google');
    await setUserModel('gemini-2.5-flash');
    expect(APP_CONFIG.CURRENT_PROVIDER).toBe('Google');
    expect(APP_CONFIG.CURRENT_MODEL).toBe('gemini-2.5-flash');

    APP_CONFIG.CURRENT_MODEL = 'gemini-2.5-pro';
    expect(getUserModel()).toBe('gemini-2.5-pro');
    expect(store.size).toBe(0);
  });

  it('still isolates users inside their scopes', async () => {
    defaultStore({ mode: 'single-user' });
    await setUserProvider('Global');
    const id = randomUUID();
    await runAsUser(id, () => setUserProvider('Mine'));
    expect(runAsUser(id, () => getUserProvider())).toBe('Mine');
    expect(getUserProvider()).toBe('Global');
  });
});

describe('explicit user id', () => {
  it('reads and writes that user outside any scope, even in multi-user mode', async () => {
    const store = defaultStore({ mode: 'multi-user' });
    const id = randomUUID();
    await configureUser({ provider: 'OpenAI', model: 'gpt-4o' }, id);
    expect(getUserProvider(id)).toBe('OpenAI');
    expect(getUserModel(id)).toBe('gpt-4o');
    expect(store.peek(id)?.model).toBe('gpt-4o');
  });

  it('inside another user\'s scope targets the named user, not the current one', async () => {
    const store = defaultStore();
    const me = randomUUID();
    const other = randomUUID();
    await runAsUser(me, async () => {
      await setUserProvider('Other', other);
      expect(getUserProvider()).toBeNull();
      expect(getUserProvider(other)).toBe('Other');
    });
    expect(store.peek(me)?.provider).toBeNull();
  });

  it.each<[string, unknown]>([
    ['not a UUID', 'alice'],
    ['empty', ''],
    ['__proto__', '__proto__'],
    ['too long', 'a'.repeat(300)],
    ['a number', 42],
  ])('throws InvalidUserIdError when it is %s', async (_name, id) => {
    const store = defaultStore();
    expect(() => getUserProvider(id as string)).toThrow(InvalidUserIdError);
    await expect(setUserProvider('x', id as string)).rejects.toMatchObject({ code: 'ERR_INVALID_USER_ID' });
    expect(store.size).toBe(0);
  });
});

describe('every field has a getter and a setter bound to the current user', () => {
  it('round-trips each field and keeps it apart from another user', async () => {
    defaultStore();
    const values = {
      provider: 'Azure',
      model: 'gpt-4o',
      mcpServerName: 'files',
      mcpServerId: 'srv-1',
      awsRegion: 'eu-west-1',
      azureDeploymentDetails: { endpoint: 'https://az', deploymentName: 'dep' },
      friendliDetails: { endpointUrl: 'https://fr', modelId: 'mid' },
      modelProviderInProfile: 'OpenAI',
      serverConfigs: { files: { command: 'mcp-files' } },
    };
    const a = randomUUID();
    await runAsUser(a, async () => {
      await setUserProvider(values.provider);
      await setUserModel(values.model);
      await setUserMcpServerName(values.mcpServerName);
      await setUserMcpServerId(values.mcpServerId);
      await setUserAwsRegion(values.awsRegion);
      await setUserAzureDeploymentDetails(values.azureDeploymentDetails);
      await setUserFriendliDetails(values.friendliDetails);
      await setUserModelProviderInProfile(values.modelProviderInProfile);
      await setUserServerConfigs(values.serverConfigs);
      expect({
        provider: getUserProvider(),
        model: getUserModel(),
        mcpServerName: getUserMcpServerName(),
        mcpServerId: getUserMcpServerId(),
        awsRegion: getUserAwsRegion(),
        azureDeploymentDetails: getUserAzureDeploymentDetails(),
        friendliDetails: getUserFriendliDetails(),
        modelProviderInProfile: getUserModelProviderInProfile(),
        serverConfigs: getUserServerConfigs(),
      }).toEqual(values);
      expect(getUserRuntimeContext().version).toBe(9);
    });
    expect(getUserRuntimeContext(a)).toMatchObject(values);
    const b = runAsUser(randomUUID(), () => getUserRuntimeContext());
    for (const key of Object.keys(values)) {
      expect(b[key as keyof typeof values]).toEqual(key === 'serverConfigs' ? {} : null);
    }
  });

  it('sets and reads live clients of the current user', async () => {
    defaultStore();
    const llm = fakeClient();
    const mcp = fakeClient('mcp');
    await runAsUser(randomUUID(), async () => {
      await setUserLlmInstance(llm);
      await setUserMcpClient(mcp);
      expect(getUserLlmInstance()).toBe(llm);
      expect(getUserMcpClient()).toBe(mcp);
    });
    expect(runAsUser(randomUUID(), () => [getUserLlmInstance(), getUserMcpClient()])).toEqual([null, null]);
  });
});
