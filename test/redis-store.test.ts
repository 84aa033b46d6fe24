/**
 * RedisContextStore against a real Redis (REDIS_URL or 127.0.0.1:6379): two
 * stores in one process stand for two instances, each with its own ioredis
 * connections; every run uses its own key prefix.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FakeLlmClient, fakeLlmResources } from './support/fake-llm.js';
import { PROVIDERS, createApp, createSharedStore } from '../examples/app.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import {
  ContextNotLoadedError,
  ContextStoreUnavailableError,
  configureUser,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  getUserRuntimeContext,
  runAsUser,
  setDefaultStore,
  type ContextPatch,
  type UserRuntimeContext,
} from '../src/index.js';
import { RedisContextStore, type RedisContextStoreOptions } from '../src/redis.js';
import { REDIS_URL, adminClient, deletePrefix, requireRedis, runPrefix, sleep } from './helpers/redis.js';

const available = await requireRedis('RedisContextStore tests');

/** The invalidation bound promised to requests on other instances. */
const INVALIDATION_BOUND_MS = 100;

interface Seen {
  provider: string | null;
  model: string | null;
  version: number;
}

function read(store: RedisContextStore, user: string): Promise<Seen> {
  return runAsUser(
    user,
    async () => ({ provider: getUserProvider(), model: getUserModel(), version: getUserRuntimeContext().version }),
    { store },
  );
}

function configure(store: RedisContextStore, user: string, patch: ContextPatch): Promise<UserRuntimeContext> {
  return runAsUser(user, () => configureUser(patch), { store });
}

describe.skipIf(!available)('RedisContextStore', () => {
  const prefix = runPrefix('store');
  const encryptionKey = randomBytes(32);
  const open: RedisContextStore[] = [];
  const servers: Server[] = [];
  let admin: Redis | undefined;

  function adminRedis(): Redis {
    admin ??= adminClient();
    return admin;
  }

  async function makeStore(options: Partial<RedisContextStoreOptions> = {}): Promise<RedisContextStore> {
    const store = createSharedStore({ redis: REDIS_URL, keyPrefix: prefix, encryptionKey, resources: fakeLlmResources(), ...options });
    open.push(store);
    expect(await store.whenReady(5_000)).toBe(true);
    return store;
  }

  afterEach(async () => {
    for (const server of servers.splice(0)) server.close();
    await Promise.all(open.splice(0).map((store) => store.close()));
  });

  afterAll(async () => {
    if (admin !== undefined) {
      await deletePrefix(admin, prefix);
      await admin.quit();
    }
  });

  it('reads on one instance the configuration written on the other', async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    const written = await configure(a, user, { provider: 'Google', model: 'gemini-2.5-flash', awsRegion: 'eu-west-1' });
    expect(written.version).toBe(1);
    const seen = await runAsUser(
      user,
      async () => ({ ctx: getUserRuntimeContext(), llm: getUserLlmInstance() }),
      { store: b },
    );
    expect(seen.ctx).toMatchObject({ provider: 'Google', model: 'gemini-2.5-flash', awsRegion: 'eu-west-1', version: 1 });
    // The live client is built on b from the shared configuration.
    expect(seen.llm).toBeInstanceOf(FakeLlmClient);
    expect(seen.llm).toMatchObject({ provider: 'Google', model: 'gemini-2.5-flash' });
    // A user nobody configured reads the defaults, and nothing is written for them.
    const stranger = randomUUID();
    expect(await read(b, stranger)).toEqual({ provider: null, model: null, version: 0 });
    expect(await adminRedis().exists(b.keyOf(stranger))).toBe(0);
  });

  it(`shows a reconfiguration to requests that start on the other instance ${INVALIDATION_BOUND_MS} ms after the ack`, async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    for (let round = 0; round < 20; round++) {
      const provider = PROVIDERS[round % PROVIDERS.length]!;
      // b holds the previous configuration in its near-cache…
      await read(b, user);
      const acked = await configure(a, user, { provider, model: `model-${round}` });
      await sleep(INVALIDATION_BOUND_MS);
      // …and a request starting after the bound sees the new one.
      expect(await read(b, user)).toEqual({ provider, model: `model-${round}`, version: acked.version });
    }
    expect(b.stats.invalidations).toBeGreaterThanOrEqual(20);
  });

  it('never leaves a torn configuration when two instances configure one user at once', async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    const torn: string[] = [];
    const check = (seen: { provider: string | null; model: string | null }, where: string): void => {
      // Every write pairs a provider with a model named after it.
      if (seen.provider !== null && !String(seen.model).startsWith(`${seen.provider}/`)) {
        torn.push(`${where}: ${seen.provider} + ${String(seen.model)}`);
      }
    };
    for (let round = 0; round < 40; round++) {
      const writes = [a, b].map(async (store, i) => {
        await sleep(Math.random() * 3);
        const provider = PROVIDERS[(round * 2 + i) % PROVIDERS.length]!;
        const model = `${provider}/r${round}-w${i}`;
        const mine = await configure(store, user, { provider, model });
        // The writer's own request sees its own write.
        expect([mine.provider, mine.model]).toEqual([provider, model]);
      });
      const reads = Array.from({ length: 8 }, async (_, i) => {
        await sleep(Math.random() * 4);
        check(await read(i % 2 === 0 ? a : b, user), `read ${round}/${i}`);
      });
      await Promise.all([...writes, ...reads]);
    }
    await sleep(INVALIDATION_BOUND_MS);
    const [onA, onB] = [await read(a, user), await read(b, user)];
    check(onA, 'final a');
    expect(torn).toEqual([]);
    expect(onB).toEqual(onA);
    expect(onA.version).toBe(80);
    const raw = await adminRedis().hgetall(a.keyOf(user));
    expect([raw['f:provider'], raw['f:model']]).toEqual([JSON.stringify(onA.provider), JSON.stringify(onA.model)].map((j) => `j:${j}`));
  });

  it('serves 100 users interleaving across two instances over HTTP with zero cross-user reads', async () => {
    const secret = generateSecret();
    const instances = await Promise.all(
      [await makeStore(), await makeStore()].map(async (store) => {
        const { app } = createApp({ secret, store });
        const server = app.listen(0, '127.0.0.1');
        servers.push(server);
        await new Promise<void>((resolve) => server.once('listening', resolve));
        return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      }),
    );
    const users = Array.from({ length: 100 }, (_, i) => {
      const uuid = randomUUID();
      return { uuid, token: mintToken(secret, uuid), provider: PROVIDERS[i % PROVIDERS.length]!, model: `m-${i}` };
    });
    const call = async (token: string, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const base = instances[Math.floor(Math.random() * instances.length)]!;
      const res = await fetch(base + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const crossTalk: string[] = [];
    const queryAll = async (): Promise<void> => {
      const jobs = users.flatMap((u) => [0, 1, 2].map((i) => ({ u, i })));
      jobs.sort(() => Math.random() - 0.5);
      await Promise.all(
        jobs.map(async ({ u, i }) => {
          const { status, json } = await call(u.token, '/query', { prompt: `query ${i} of ${u.uuid}` });
          const expected = `${u.provider}/${u.model}`;
          const ran = `${String(json['provider'])}/${String(json['model'])}`;
          if (status !== 200 || json['user'] !== u.uuid || ran !== expected || !String(json['answer']).startsWith(`[${expected}]`)) {
            crossTalk.push(`${u.uuid} expected ${expected}, got ${status} ${JSON.stringify(json)}`);
          }
        }),
      );
    };
    // Everyone configures on a random instance, at the same time.
    await Promise.all(
      users.map(async (u) => {
        await sleep(Math.random() * 5);
        const { status } = await call(u.token, '/configure', { provider: u.provider, model: u.model });
        expect(status).toBe(200);
      }),
    );
    await sleep(INVALIDATION_BOUND_MS);
    await queryAll();
    // Half of them reconfigure on a random instance; queries land anywhere.
    await Promise.all(
      users.filter((_, i) => i % 2 === 0).map(async (u, i) => {
        u.provider = PROVIDERS[(i + 3) % PROVIDERS.length]!;
        u.model = `${u.model}-v2`;
        const { status } = await call(u.token, '/configure', { provider: u.provider, model: u.model });
        expect(status).toBe(200);
      }),
    );
    await sleep(INVALIDATION_BOUND_MS);
    await queryAll();
    expect(crossTalk).toEqual([]);
  });

  it('slides the TTL in Redis with at most one refresh per interval, and an idle context leaves Redis and memory', async () => {
    const ttl = 1_000;
    const refreshInterval = 250;
    const a = await makeStore({ ttl, refreshInterval, sweepInterval: 100 });
    const user = randomUUID();
    await configure(a, user, { provider: 'Google', model: 'g' });
    const key = a.keyOf(user);
    const started = Date.now();
    let accesses = 0;
    // Active for twice the TTL: the context must survive in Redis.
    while (Date.now() - started < 2 * ttl) {
      await read(a, user);
      accesses++;
      await sleep(40);
    }
    const activeFor = Date.now() - started;
    expect(await adminRedis().exists(key)).toBe(1);
    const pttl = await adminRedis().pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(ttl + refreshInterval);
    const { touches } = a.stats;
    expect(touches).toBeGreaterThanOrEqual(2);
    // No write storm: one refresh per interval at most, though every access reads.
    expect(touches).toBeLessThanOrEqual(Math.ceil(activeFor / refreshInterval) + 1);
    expect(accesses).toBeGreaterThan(3 * touches);
    // Idle: gone from Redis after ttl + refreshInterval, and from local memory.
    await sleep(ttl + refreshInterval + 300);
    expect(await adminRedis().exists(key)).toBe(0);
    expect(a.has(user)).toBe(false);
    // Coming back after that starts from the defaults.
    expect(await read(a, user)).toEqual({ provider: null, model: null, version: 0 });
  });

  it('single-flight: many concurrent first requests for one user cause one Redis read', async () => {
    const writer = await makeStore();
    const users = Array.from({ length: 20 }, () => randomUUID());
    await Promise.all(users.map((u, i) => configure(writer, u, { provider: 'Anthropic', model: `c-${i}` })));
    const reader = await makeStore();
    const monitor = await adminRedis().monitor();
    const commands: string[][] = [];
    // Commands sent by clients (those run inside our Lua scripts show as source "lua").
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') commands.push(args);
    });
    const sentinel = `${prefix}sentinel:${randomUUID()}`;
    try {
      const seen = await Promise.all(
        users.flatMap((u, i) =>
          Array.from({ length: 25 }, async () => {
            await sleep(Math.random() * 2);
            const s = await read(reader, u);
            return s.model === `c-${i}`;
          }),
        ),
      );
      expect(seen.every(Boolean)).toBe(true);
      // Everything sent before the sentinel has been seen by MONITOR once it shows up.
      await adminRedis().get(sentinel);
      for (let i = 0; i < 100 && !commands.some((c) => c.includes(sentinel)); i++) await sleep(10);
    } finally {
      monitor.disconnect();
    }
    for (const u of users) {
      const onKey = commands.filter((c) => c.includes(reader.keyOf(u)));
      expect(onKey.length, `Redis commands for ${u}: ${JSON.stringify(onKey.map((c) => c.slice(0, 2)))}`).toBe(1);
    }
    expect(reader.stats.loads).toBe(users.length);
  });

  it('encrypts credentials before they reach Redis, bound to the user and field', async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    await configure(a, user, {
      provider: 'Friendli',
      model: 'meta-llama',
      friendliDetails: { endpointUrl: 'https://friendli.example', token: 'flp-secret-token-123' },
      azureDeploymentDetails: { endpoint: 'https://az.example', apiKey: 'az-secret-key-456' },
    });
    const raw = await adminRedis().hgetall(a.keyOf(user));
    const dump = JSON.stringify(raw);
    expect(dump).not.toContain('flp-secret-token-123');
    expect(dump).not.toContain('az-secret-key-456');
    expect(raw['f:friendliDetails']).toMatch(/^e1:/);
    expect(raw['f:provider']).toBe('j:"Friendli"');
    const details = await runAsUser(user, async () => getUserRuntimeContext().friendliDetails, { store: b });
    expect(details).toEqual({ endpointUrl: 'https://friendli.example', token: 'flp-secret-token-123' });

    // An instance with another key cannot read it: 503-class error, never garbage.
    const otherKey = await makeStore({ encryptionKey: randomBytes(32) });
    await expect(read(otherKey, user)).rejects.toBeInstanceOf(ContextStoreUnavailableError);
    // Ciphertext copied to another user's context does not decrypt (bound to the user).
    const victim = randomUUID();
    await adminRedis().hset(a.keyOf(victim), 'v', '1', 'f:friendliDetails', raw['f:friendliDetails']!);
    await expect(read(b, victim)).rejects.toBeInstanceOf(ContextStoreUnavailableError);

    expect(() => new RedisContextStore({ redis: REDIS_URL, keyPrefix: prefix })).toThrow(/options\.encryptionKey is required/);
    expect(() => new RedisContextStore({ redis: REDIS_URL, encryptionKey: randomBytes(16) })).toThrow(/exactly 32 bytes/);
    expect(() => new RedisContextStore({ redis: 'http://x', encryptionKey })).toThrow(/options\.redis/);
  });

  it('rebuilds live resources per instance from the shared configuration and disposes them when it changes', async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    await configure(a, user, { provider: 'Google', model: 'g-1' });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let first: FakeLlmClient | undefined;
    // A long request on b holds the first client…
    const longRequest = runAsUser(
      user,
      async () => {
        first = getUserLlmInstance() as FakeLlmClient;
        await held;
        return [getUserModel(), (getUserLlmInstance() as FakeLlmClient).model];
      },
      { store: b },
    );
    while (first === undefined) await sleep(5);
    const onA = await runAsUser(user, async () => getUserLlmInstance(), { store: a });
    expect(onA).not.toBe(first);
    await configure(a, user, { model: 'g-2' });
    await sleep(INVALIDATION_BOUND_MS);
    const second = await runAsUser(user, async () => getUserLlmInstance() as FakeLlmClient, { store: b });
    expect(second.model).toBe('g-2');
    // …which is not disposed under it, and keeps its snapshot.
    expect(first.closed).toBe(false);
    release();
    expect(await longRequest).toEqual(['g-1', 'g-1']);
    await sleep(10);
    expect(first.closed).toBe(true);
    expect(second.closed).toBe(false);
    await b.close();
    expect(second.closed).toBe(true);
  });

  it('keeps the synchronous paths honest: no silent defaults for a context not loaded here', async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    await configure(a, user, { provider: 'Google', model: 'g' });
    await sleep(INVALIDATION_BOUND_MS);
    expect(() => b.openScope(user)).toThrow(ContextNotLoadedError);
    expect(() => b.currentGeneration(user)).toThrow(ContextNotLoadedError);
    expect(() => b.commit(user, { model: 'x' })).toThrow(ContextNotLoadedError);
    await read(b, user);
    const scope = b.openScope(user);
    expect(scope.gen.config.model).toBe('g');
    scope.close();
    // Writes with an explicit user id outside any scope go to Redis as well.
    const previous = setDefaultStore(b);
    try {
      const written = await configureUser({ model: 'g-explicit' }, user);
      expect(written).toMatchObject({ provider: 'Google', model: 'g-explicit', version: 2 });
    } finally {
      if (previous !== undefined) setDefaultStore(previous);
    }
    await sleep(INVALIDATION_BOUND_MS);
    expect((await read(a, user)).model).toBe('g-explicit');
  });

  it('close() quits the Redis connections it opened', async () => {
    const store = await makeStore();
    const names = async (): Promise<string> => String(await adminRedis().client('LIST'));
    expect(await names()).toContain(`name=koa-user-context:${store.instanceId}`);
    expect(await names()).toContain(`name=koa-user-context:${store.instanceId}:sub`);
    await store.close();
    for (let i = 0; i < 50 && (await names()).includes(store.instanceId); i++) await sleep(10);
    expect(await names()).not.toContain(store.instanceId);
    expect(store.ready).toBe(false);
    await expect(async () => read(store, randomUUID())).rejects.toThrow(/closed/);
  });

  it('recovers by itself after CLIENT KILL of its connections, invalidations included', async () => {
    const [a, b] = [await makeStore(), await makeStore()];
    const user = randomUUID();
    await configure(a, user, { provider: 'Google', model: 'before' });
    expect((await read(b, user)).model).toBe('before');
    const list = String(await adminRedis().client('LIST'));
    const ids = list
      .split('\n')
      .filter((line) => line.includes(`name=koa-user-context:${b.instanceId}`))
      .map((line) => /\bid=(\d+)/.exec(line)?.[1]);
    expect(ids).toHaveLength(2);
    for (const id of ids) await adminRedis().client('KILL', 'ID', id!);
    await sleep(20);
    // Cached context keeps serving reads while reconnecting, or is reloaded.
    const during = await read(b, user).catch((error: unknown) => error);
    if (!(during instanceof ContextStoreUnavailableError)) expect(during).toMatchObject({ model: 'before' });
    expect(await b.whenReady(5_000)).toBe(true);
    await configure(a, user, { model: 'after' });
    await sleep(INVALIDATION_BOUND_MS);
    expect((await read(b, user)).model).toBe('after');
  });
});
