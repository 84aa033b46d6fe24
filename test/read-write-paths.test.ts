/**
 * One read path and one write path: the helpers, the legacy globals, the log
 * mixin, bindToCurrentUser() and bindAsyncIterable() agree on what a piece of
 * code sees, inside its scope and after it ended, with the in-memory and the
 * Redis store (regressions of issue 10).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  APP_CONFIG,
  APP_STATE,
  ContextStore,
  bindAsyncIterable,
  bindToCurrentUser,
  configureUser,
  getUserModel,
  getUserProvider,
  getUserServerConfigs,
  runAsUser,
  setDefaultStore,
  userLogMixin,
} from '../src/index.js';
import { RedisContextStore } from '../src/redis.js';
import { REDIS_URL, adminClient, deletePrefix, requireRedis, runPrefix } from './helpers/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = () => process.removeAllListeners('warning');

type Reader = () => { helper: unknown; legacy: unknown; mixin: unknown };
const readAll: Reader = () => ({
  helper: getUserProvider(),
  legacy: APP_CONFIG.CURRENT_PROVIDER,
  mixin: userLogMixin({ fields: ['provider'] })()['provider'],
});

async function afterScopeEnds(store: ContextStore, user: string): Promise<{ during: ReturnType<Reader>; after: ReturnType<Reader> }> {
  let late: (() => ReturnType<Reader>) | undefined;
  const during = await runAsUser(
    user,
    async () => {
      late = bindToCurrentUser(readAll);
      return readAll();
    },
    { store },
  );
  await runAsUser(user, () => configureUser({ provider: 'Anthropic', model: 'claude-3-5-haiku' }), { store });
  // Fire-and-forget work of the first scope, running after it ended, and code
  // that captured the scope without binding (a timer set inside the request).
  const after = await Promise.resolve(late!());
  return { during, after };
}

describe('read path (in-memory store)', () => {
  const stores: ContextStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it('helpers, legacy APP_CONFIG and the log mixin agree after the scope ended: all see the new configuration', async () => {
    const store = new ContextStore();
    stores.push(store);
    setDefaultStore(store);
    const user = randomUUID();
    await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' }, user);
    quiet();
    const { during, after } = await afterScopeEnds(store, user);
    expect(during).toEqual({ helper: 'Google', legacy: 'Google', mixin: 'Google' });
    expect(after).toEqual({ helper: 'Anthropic', legacy: 'Anthropic', mixin: 'Anthropic' });
  });

  it('a scope that ended and re-reads through a timer sees the same as the helpers', async () => {
    const store = new ContextStore();
    stores.push(store);
    setDefaultStore(store);
    const user = randomUUID();
    await configureUser({ provider: 'Google' }, user);
    quiet();
    const seen = await new Promise<ReturnType<Reader>[]>((resolve) => {
      void runAsUser(user, () => {
        setTimeout(() => {
          const first = readAll();
          void configureUser({ provider: 'OpenAI' }, user).then(() => resolve([first, readAll()]));
        }, 5);
      }, { store });
    });
    expect(seen[0]).toEqual({ helper: 'Google', legacy: 'Google', mixin: 'Google' });
    expect(seen[1]).toEqual({ helper: 'OpenAI', legacy: 'OpenAI', mixin: 'OpenAI' });
  });
});

const redisUp = await requireRedis('read/write path tests on Redis');

describe.skipIf(!redisUp)('read and write paths on a Redis store', () => {
  const prefix = runPrefix('paths');
  const encryptionKey = randomBytes(32);
  const stores: RedisContextStore[] = [];
  const admin = adminClient();
  const make = async (): Promise<RedisContextStore> => {
    const store = new RedisContextStore({ redis: REDIS_URL, keyPrefix: prefix, encryptionKey });
    stores.push(store);
    expect(await store.whenReady(5_000)).toBe(true);
    return store;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await deletePrefix(admin, prefix);
    await admin.quit();
  });

  it('a legacy global write inside a scope is stored in Redis (no ContextNotLoadedError) and another instance sees it', async () => {
    const a = await make();
    const b = await make();
    const user = randomUUID();
    quiet();
    await runAsUser(user, () => configureUser({ provider: 'Google', model: 'gemini-2.5-flash' }), { store: a });
    let thrown: unknown;
    await runAsUser(
      user,
      async () => {
        try {
          APP_CONFIG.CURRENT_MODEL = 'gemini-2.5-pro';
          APP_STATE.server_configs = { warehouse: { url: 'http://127.0.0.1:1/mcp' } };
        } catch (error) {
          thrown = error;
        }
      },
      { store: a },
    );
    expect(thrown).toBeUndefined();
    let seen: { model: unknown; configs: unknown } | undefined;
    for (let i = 0; i < 50; i++) {
      seen = await runAsUser(user, async () => ({ model: getUserModel(), configs: getUserServerConfigs() }), { store: b });
      if (seen.model === 'gemini-2.5-pro' && Object.keys(seen.configs as object).length > 0) break;
      await sleep(20);
    }
    expect(seen).toEqual({ model: 'gemini-2.5-pro', configs: { warehouse: { url: 'http://127.0.0.1:1/mcp' } } });
  });

  it('bindAsyncIterable and bindToCurrentUser both work after their scope ended, when the context must be reloaded', async () => {
    const a = await make();
    const b = await make();
    const user = randomUUID();
    await runAsUser(user, () => configureUser({ provider: 'Google' }), { store: a });
    async function* providers(): AsyncGenerator<string | null> {
      yield getUserProvider();
      yield getUserProvider();
    }
    let iterable: AsyncIterable<string | null> | undefined;
    let bound: (() => string | null | Promise<string | null>) | undefined;
    await runAsUser(
      user,
      async () => {
        iterable = bindAsyncIterable(providers());
        bound = bindToCurrentUser(() => getUserProvider());
      },
      { store: a },
    );
    // Another instance changes the user; this instance drops its copy, so re-entering must load it.
    await runAsUser(user, () => configureUser({ provider: 'Anthropic' }), { store: b });
    a.evict(user);
    const got: Array<string | null> = [];
    for await (const p of iterable!) got.push(p);
    expect(got).toEqual(['Anthropic', 'Anthropic']);
    a.evict(user);
    expect(await bound!()).toBe('Anthropic');
  });
});
