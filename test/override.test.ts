import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  APP_CONFIG,
  ContextStore,
  InvalidProfileError,
  UserContextMissingError,
  bindToCurrentUser,
  configureUser,
  currentProfileTag,
  getUserLlmInstance,
  getUserMcpClient,
  getUserModel,
  getUserProvider,
  getUserRuntimeContext,
  isProfileOverride,
  runAsUser,
  runWithProfile,
  type UserConfig,
} from '../src/index.js';

class TestLlm {
  disposed = 0;
  constructor(readonly provider: string | null, readonly model: string | null, readonly user: string) {}
}

class TestMcp {
  disposed = 0;
  constructor(readonly server: string | null) {}
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const jitter = () => delay(Math.random() * 6);
const stores: ContextStore[] = [];

function newStore() {
  const built: TestLlm[] = [];
  const mcps: TestMcp[] = [];
  const store = new ContextStore({
    resources: {
      llmInstance: {
        create: (config: UserConfig, user: string) => {
          const llm = new TestLlm(config.provider, config.model, user);
          built.push(llm);
          return llm;
        },
        dispose: (llm) => {
          (llm as TestLlm).disposed++;
        },
      },
      mcpClient: {
        create: (config: UserConfig) => {
          const mcp = new TestMcp(config.mcpServerName);
          mcps.push(mcp);
          return mcp;
        },
        dispose: (mcp) => {
          (mcp as TestMcp).disposed++;
        },
      },
    },
  });
  stores.push(store);
  return { store, built, mcps };
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe('runWithProfile: input', () => {
  it('needs a user scope', () => {
    expect(() => runWithProfile({ provider: 'Anthropic' }, () => 1)).toThrow(UserContextMissingError);
  });

  it('rejects malformed profiles with InvalidProfileError', async () => {
    const { store } = newStore();
    await runAsUser(randomUUID(), () => {
      for (const bad of [null, 'fast', [], { tag: '' }, { tag: 7 }, { tag: 'x'.repeat(201) }, { llmInstance: {} },
        { provider: () => 'x' }, { __proto__: null, constructor: 'x' }]) {
        const error = (() => {
          try {
            runWithProfile(bad as never, () => 1);
            return null;
          } catch (e) {
            return e;
          }
        })();
        expect(error, JSON.stringify(bad)).toBeInstanceOf(InvalidProfileError);
        expect((error as InvalidProfileError).code).toBe('ERR_INVALID_PROFILE');
      }
      expect(() => runWithProfile({}, 'nope' as never)).toThrow(TypeError);
    }, { store });
  });
});

describe('runWithProfile: one query on another profile', () => {
  it('changes nothing stored or global, and builds the override\'s client lazily and disposes it after', async () => {
    const { store, built } = newStore();
    const user = randomUUID();
    const globalProvider = APP_CONFIG.CURRENT_PROVIDER;
    await runAsUser(user, async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash', mcpServerName: 'warehouse' });
      const own = getUserLlmInstance() as TestLlm;
      const ownMcp = getUserMcpClient();
      const versionBefore = store.peek(user)!.version;
      const inside = await runWithProfile({ tag: '@fast', provider: 'Anthropic', model: 'claude-3-5-haiku' }, async () => {
        expect(isProfileOverride()).toBe(true);
        expect(currentProfileTag()).toBe('@fast');
        await jitter();
        const builtBefore = built.length;
        const llm = getUserLlmInstance() as TestLlm;
        expect(built.length).toBe(builtBefore + 1);
        expect(getUserLlmInstance()).toBe(llm);
        await jitter();
        expect(store.peek(user)!.provider).toBe('Google');
        return {
          provider: getUserProvider(),
          model: getUserModel(),
          view: getUserRuntimeContext(),
          llm,
          mcp: getUserMcpClient(),
          disposedInFlight: llm.disposed,
        };
      });
      expect(inside.provider).toBe('Anthropic');
      expect(inside.model).toBe('claude-3-5-haiku');
      expect(inside.view.provider).toBe('Anthropic');
      expect(inside.llm).toMatchObject({ provider: 'Anthropic', model: 'claude-3-5-haiku', user });
      expect(inside.disposedInFlight).toBe(0);
      await delay(0);
      expect(inside.llm.disposed).toBe(1);
      // The MCP client does not depend on provider/model: shared, not rebuilt, not disposed.
      expect(inside.mcp).toBe(ownMcp);
      expect((ownMcp as TestMcp).disposed).toBe(0);
      // The user's own configuration and client are untouched.
      expect(getUserProvider()).toBe('Google');
      expect(getUserLlmInstance()).toBe(own);
      expect(own.disposed).toBe(0);
      expect(store.peek(user)!.version).toBe(versionBefore);
      expect(isProfileOverride()).toBe(false);
      expect(currentProfileTag()).toBeUndefined();
    }, { store });
    expect(APP_CONFIG.CURRENT_PROVIDER).toBe(globalProvider);
  });

  it('never builds a client the override does not use', async () => {
    const { store, built } = newStore();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
      await runWithProfile({ model: 'gemini-2.5-pro' }, () => getUserModel());
      expect(built.length).toBe(0);
    }, { store });
  });

  it('nests: the innermost profile wins, each level reverts when it ends', async () => {
    const { store } = newStore();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
      await runWithProfile({ tag: 'outer', provider: 'Anthropic', model: 'claude-3-5-haiku' }, async () => {
        await runWithProfile({ tag: 'inner', model: 'claude-3-7-sonnet' }, async () => {
          await jitter();
          expect([getUserProvider(), getUserModel(), currentProfileTag()]).toEqual(['Anthropic', 'claude-3-7-sonnet', 'inner']);
          await runWithProfile({ provider: 'OpenAI' }, async () => {
            // A profile without a tag keeps the enclosing tag.
            expect([getUserProvider(), getUserModel(), currentProfileTag()]).toEqual(['OpenAI', 'claude-3-7-sonnet', 'inner']);
          });
        });
        expect([getUserProvider(), getUserModel(), currentProfileTag()]).toEqual(['Anthropic', 'claude-3-5-haiku', 'outer']);
      });
      expect([getUserProvider(), getUserModel()]).toEqual(['Google', 'gemini-2.5-flash']);
    }, { store });
  });

  it('a write inside the override is committed to the user; the override stays on top', async () => {
    const { store } = newStore();
    const user = randomUUID();
    await runAsUser(user, async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
      await runWithProfile({ provider: 'Anthropic' }, async () => {
        await configureUser({ model: 'gemini-2.5-pro', awsRegion: 'eu-west-1' });
        expect(getUserProvider()).toBe('Anthropic');
        expect(getUserModel()).toBe('gemini-2.5-pro');
        expect(store.peek(user)).toMatchObject({ provider: 'Google', model: 'gemini-2.5-pro' });
        // A legacy write inside the override is routed the same way.
        APP_CONFIG.CURRENT_AWS_REGION = 'us-east-1';
        expect(APP_CONFIG.CURRENT_PROVIDER).toBe('Anthropic');
        expect(store.peek(user)!.awsRegion).toBe('us-east-1');
      });
      // The enclosing request sees its own write, not the override.
      expect([getUserProvider(), getUserModel()]).toEqual(['Google', 'gemini-2.5-pro']);
    }, { store });
  });

  it('callbacks bound inside the override run on it', async () => {
    const { store } = newStore();
    const other = randomUUID();
    await runAsUser(other, () => configureUser({ provider: 'OpenAI' }), { store });
    await runAsUser(randomUUID(), async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
      const seen: string[] = [];
      await runWithProfile({ provider: 'Anthropic' }, async () => {
        const cb = bindToCurrentUser(() => seen.push(String(getUserProvider())));
        // Called from another user's scope, as a shared emitter or pool would.
        await runAsUser(other, async () => {
          seen.push(String(getUserProvider()));
          cb();
        }, { store });
      });
      expect(seen).toEqual(['OpenAI', 'Anthropic']);
    }, { store });
  });
});

describe('runWithProfile under concurrency', () => {
  it('many users interleaving queries with and without overrides never see another\'s configuration', async () => {
    const { store, built } = newStore();
    const providers = ['Google', 'Anthropic', 'OpenAI', 'Amazon'];
    const users = Array.from({ length: 16 }, (_, i) => ({
      uuid: randomUUID(),
      provider: providers[i % providers.length]!,
      model: `model-${i}`,
    }));
    await Promise.all(users.map((u) => runAsUser(u.uuid, () => configureUser({ provider: u.provider, model: u.model }), { store })));
    const failures: string[] = [];
    const check = (what: string, got: unknown, want: unknown) => {
      if (got !== want) failures.push(`${what}: got ${String(got)}, want ${String(want)}`);
    };
    const overrideLlms = new Set<TestLlm>();
    await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 8 }, (_, q) =>
          runAsUser(u.uuid, async () => {
            await jitter();
            const override = q % 2 === 1 ? { tag: `p${q % 4}`, provider: 'Friendli', model: `${u.model}-alt${q % 4}` } : null;
            const body = async (want: { provider: string; model: string; tag: string | undefined }) => {
              for (let step = 0; step < 3; step++) {
                await jitter();
                const llm = getUserLlmInstance() as TestLlm;
                check(`${u.uuid} q${q} provider`, getUserProvider(), want.provider);
                check(`${u.uuid} q${q} model`, getUserModel(), want.model);
                check(`${u.uuid} q${q} llm`, `${llm.provider}/${llm.model}/${llm.user}`, `${want.provider}/${want.model}/${u.uuid}`);
                check(`${u.uuid} q${q} legacy`, APP_CONFIG.CURRENT_MODEL, want.model);
                check(`${u.uuid} q${q} tag`, currentProfileTag(), want.tag);
                check(`${u.uuid} q${q} disposed in flight`, llm.disposed, 0);
                if (want.tag !== undefined) overrideLlms.add(llm);
              }
            };
            if (override === null) await body({ provider: u.provider, model: u.model, tag: undefined });
            else await runWithProfile(override, () => body({ provider: override.provider, model: override.model, tag: override.tag }));
            await jitter();
            check(`${u.uuid} q${q} after`, `${getUserProvider()}/${getUserModel()}`, `${u.provider}/${u.model}`);
          }, { store }),
        ),
      ),
    );
    expect(failures).toEqual([]);
    await delay(0);
    // Every override client was disposed exactly once; the users' own clients are alive.
    expect(overrideLlms.size).toBeGreaterThan(0);
    for (const llm of overrideLlms) expect(llm.disposed).toBe(1);
    const own = built.filter((llm) => !overrideLlms.has(llm));
    expect(own.length).toBe(users.length);
    for (const llm of own) expect(llm.disposed).toBe(0);
    await store.close();
    for (const llm of built) expect(llm.disposed).toBe(1);
  });

  it('concurrent overrides of one user with the same profile share one client while in flight', async () => {
    const { store, built } = newStore();
    const user = randomUUID();
    await runAsUser(user, () => configureUser({ provider: 'Google', model: 'gemini-2.5-flash' }), { store });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const runs = Array.from({ length: 6 }, () =>
      runAsUser(user, () => runWithProfile({ provider: 'Anthropic', model: 'claude-3-5-haiku' }, async () => {
        const llm = getUserLlmInstance() as TestLlm;
        await gate;
        return llm;
      }), { store }),
    );
    await delay(5);
    release();
    const llms = await Promise.all(runs);
    expect(new Set(llms).size).toBe(1);
    expect(built.filter((l) => l.provider === 'Anthropic').length).toBe(1);
    await delay(0);
    expect(llms[0]!.disposed).toBe(1);
  });
});
