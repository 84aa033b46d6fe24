/**
 * The Redis store's consistency features against a real Redis (REDIS_URL or
 * 127.0.0.1:6379; two stores in one process stand for two instances):
 * deleting a context everywhere (admin API), the stale-client conflict check
 * on the Redis write path, staleness bounded by `revalidateInterval` when an
 * invalidation is lost (and what that costs in Redis reads), `revalidateInterval: 0`
 * answering every request with a read sent after it started, and a lost
 * subscription noticed and reported by `/ready`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createApp, createSharedStore } from '../examples/app.js';
import { FakeLlmClient, createFakeLlm, fakeLlmResources } from './support/fake-llm.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import {
  ConfigurationConflictError,
  configureUser,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  runAsUser,
  setUserLlmInstance,
  type UserConfig,
} from '../src/index.js';
import { RedisContextStore, type RedisContextStoreOptions } from '../src/redis.js';
import { REDIS_URL, adminClient, deletePrefix, requireRedis, runPrefix, sleep } from './helpers/redis.js';

const available = await requireRedis('Redis consistency tests');

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('RedisContextStore options (checked before any connection)', () => {
  const base = { redis: 'redis://127.0.0.1:1', secretFields: [] };
  it.each([
    [{ consistency: 'eventual' }, /options\.consistency must be 'available' or 'strict', got "eventual"/],
    [{ revalidateInterval: -1 }, /options\.revalidateInterval must be a number of milliseconds >= 0/],
    [{ revalidateInterval: '5s' }, /options\.revalidateInterval/],
    [{ heartbeatInterval: 0 }, /options\.heartbeatInterval must be a number of milliseconds > 0/],
    [{ consistancy: 'strict' }, /consistancy/],
    [{ maxStaleness: 250 }, /options\.maxStaleness bounds consistency: 'strict' only/],
    [{ consistency: 'strict', maxStaleness: 0 }, /options\.maxStaleness must be a number of milliseconds >= 10/],
    [{ consistency: 'strict', maxStaleness: '250ms' }, /options\.maxStaleness must be a number of milliseconds/],
    [{ consistency: 'strict', maxStalenes: 250 }, /maxStalenes/],
    [{ redis: {} }, /options\.redis must be a Redis URL .* or an ioredis client \(Redis or Cluster\)/],
  ])('%j is a TypeError saying how to fix it', (extra, message) => {
    expect(() => new RedisContextStore({ ...base, ...extra } as unknown as RedisContextStoreOptions)).toThrow(TypeError);
    expect(() => new RedisContextStore({ ...base, ...extra } as unknown as RedisContextStoreOptions)).toThrow(message);
  });
});

describe.skipIf(!available)('RedisContextStore consistency', () => {
  const prefix = runPrefix('consistency');
  const encryptionKey = randomBytes(32);
  const open: RedisContextStore[] = [];
  const servers: Server[] = [];
  let admin: Redis | undefined;
  const redis = (): Redis => (admin ??= adminClient());

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

  it('DELETE /admin/contexts/:uuid on one instance deletes the context from Redis and from every instance, disposing their clients', async () => {
    const secret = generateSecret();
    const disposed: FakeLlmClient[] = [];
    const resources = {
      llmInstance: {
        create: (config: UserConfig) => createFakeLlm(config),
        dispose: (c: unknown) => void disposed.push(c as FakeLlmClient),
      },
    };
    const stores = [await makeStore({ resources }), await makeStore({ resources })];
    const bases = stores.map((store) => {
      const server = createApp({ secret, store }).app.listen(0, '127.0.0.1');
      servers.push(server);
      return server;
    });
    await Promise.all(bases.map((s) => new Promise<void>((resolve) => (s.listening ? resolve() : s.once('listening', resolve)))));
    const [a, b] = bases.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`) as [string, string];
    const users = Array.from({ length: 20 }, () => randomUUID());
    const adminToken = mintToken(secret, randomUUID(), { role: 'admin' });
    const req = (base: string, token: string, method: string, path: string, body?: unknown) =>
      fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    // Every user configured on a, queried on both (each instance builds its own client).
    await Promise.all(users.map(async (u) => {
      const t = mintToken(secret, u);
      expect((await req(a, t, 'POST', '/configure', { provider: 'OpenAI', model: `m-${u}` })).status).toBe(200);
      for (const base of [a, b]) expect((await req(base, t, 'POST', '/query', { prompt: 'hi' })).status).toBe(200);
    }));
    expect(users.every((u) => stores[0]!.has(u) && stores[1]!.has(u))).toBe(true);

    // Half the users deleted through a, half through b, concurrently.
    const replies = await Promise.all(users.map((u, i) => req(i % 2 === 0 ? a : b, adminToken, 'DELETE', `/admin/contexts/${u}`)));
    for (const r of replies) expect(await r.json()).toMatchObject({ evicted: true });
    await sleep(100);
    for (const u of users) {
      expect(await redis().exists(stores[0]!.keyOf(u))).toBe(0);
      expect(stores[0]!.has(u) || stores[1]!.has(u)).toBe(false);
      // Gone everywhere: the next query on either instance sees the defaults.
      for (const base of [a, b]) {
        const r = await req(base, mintToken(secret, u), 'POST', '/query', { prompt: 'hi' });
        expect(r.status).toBe(409);
        expect(await r.json()).toMatchObject({ error: 'not_configured' });
      }
    }
    // Both instances' clients (2 per user) were disposed.
    expect(disposed.length).toBe(users.length * 2);
    expect(new Set(disposed).size).toBe(users.length * 2);
    // Deleting again: 404 with a stable code.
    const again = await req(a, adminToken, 'DELETE', `/admin/contexts/${users[0]}`);
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ error: 'context_not_found' });
    // A context that only Redis holds (never used on b) is deleted through b too.
    const lone = randomUUID();
    expect((await req(a, mintToken(secret, lone), 'POST', '/configure', { provider: 'Google', model: 'g' })).status).toBe(200);
    expect(stores[1]!.has(lone)).toBe(false);
    expect((await req(b, adminToken, 'DELETE', `/admin/contexts/${lone}`)).status).toBe(200);
    expect(await redis().exists(stores[0]!.keyOf(lone))).toBe(0);
  });

  it('refuses a client built for a snapshot another instance has changed since (nothing applied); passing its fields with it wins', async () => {
    const a = await makeStore();
    const b = await makeStore();
    const users = Array.from({ length: 30 }, () => randomUUID());
    const outcomes = await Promise.all(users.map(async (user, i) => {
      await runAsUser(user, () => configureUser({ provider: 'Google', model: 'g-1' }), { store: a });
      const reading = gate();
      const configured = gate();
      const first = runAsUser(user, async () => {
        const built = new FakeLlmClient(getUserProvider()!, getUserModel()!);
        reading.open();
        await configured.promise;
        await sleep(Math.random() * 5);
        if (i % 3 === 0) {
          await expect(setUserLlmInstance(built as never)).rejects.toBeInstanceOf(ConfigurationConflictError);
          return { built, attached: false };
        }
        if (i % 3 === 1) {
          await expect(configureUser({ awsRegion: 'eu-west-1', llmInstance: built as never })).rejects.toBeInstanceOf(ConfigurationConflictError);
          return { built, attached: false };
        }
        // The fields it was built for, with it: not stale, it wins as a whole (a version-checked retry in Redis).
        await configureUser({ provider: 'Google', model: 'g-1', llmInstance: built as never });
        return { built, attached: true };
      }, { store: a });
      await reading.promise;
      // The concurrent request runs on the other instance.
      await runAsUser(user, () => configureUser({ provider: 'Anthropic', model: 'a-1' }), { store: b });
      await sleep(20); // the invalidation reaches a
      configured.open();
      return { user, ...(await first) };
    }));
    await sleep(50);
    for (const { user, built, attached } of outcomes) {
      const seen = await runAsUser(user, () => ({ provider: getUserProvider(), model: getUserModel(), llm: getUserLlmInstance() }), { store: a });
      if (attached) {
        expect(seen).toMatchObject({ provider: 'Google', model: 'g-1' });
        expect(seen.llm).toBe(built);
      } else {
        // Nothing applied: Anthropic stays, awsRegion was not written, the stale client is not attached.
        expect(seen).toMatchObject({ provider: 'Anthropic', model: 'a-1' });
        expect(seen.llm).not.toBe(built);
        expect(await redis().hget(a.keyOf(user), 'f:awsRegion')).toBeNull();
      }
    }
    expect(a.stats.conflicts).toBe(20);

    // A change to a field the client does not depend on is no conflict: the client is attached.
    const user = randomUUID();
    await runAsUser(user, () => configureUser({ provider: 'Google', model: 'g-1' }), { store: a });
    const attached = await runAsUser(user, async () => {
      const built = new FakeLlmClient('Google', 'g-1');
      await runAsUser(user, () => configureUser({ mcpServerName: 'docs' }), { store: b });
      await sleep(20);
      await setUserLlmInstance(built as never);
      return getUserLlmInstance() === (built as never);
    }, { store: a });
    expect(attached).toBe(true);
  });

  it('bounds staleness by revalidateInterval when an invalidation is lost, at one Redis read per user and interval', async () => {
    const REVALIDATE_MS = 250;
    const a = await makeStore({ revalidateInterval: 600_000 });
    const b = await makeStore({ revalidateInterval: REVALIDATE_MS });
    const users = Array.from({ length: 20 }, () => randomUUID());
    await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ provider: 'OpenAI', model: 'v1' }), { store: a })));
    for (const u of users) {
      for (const store of [a, b]) expect(await runAsUser(u, () => getUserModel(), { store })).toBe('v1');
    }
    // A write that reaches Redis without its invalidation (as when a message is lost).
    const changedAt = Date.now();
    await Promise.all(users.map(async (u) => {
      await redis().hset(a.keyOf(u), 'f:model', `j:${JSON.stringify('v2')}`);
      await redis().hincrby(a.keyOf(u), 'v', 1);
    }));
    const seenAfter = new Map<string, number>();
    const loadsBefore = b.stats.loads;
    let requests = 0;
    while (seenAfter.size < users.length && Date.now() - changedAt < 3_000) {
      await Promise.all(users.map(async (u) => {
        requests++;
        const model = await runAsUser(u, () => getUserModel(), { store: b });
        if (model === 'v2' && !seenAfter.has(u)) seenAfter.set(u, Date.now() - changedAt);
      }));
      await sleep(5);
    }
    const worst = Math.max(...seenAfter.values());
    const loads = b.stats.loads - loadsBefore;
    console.log(`[redis-consistency] lost invalidation: all ${users.length} users saw the new value after <= ${worst} ms ` +
      `(revalidateInterval ${REVALIDATE_MS} ms); ${requests} requests cost ${loads} Redis reads`);
    expect(seenAfter.size).toBe(users.length);
    expect(worst).toBeLessThanOrEqual(REVALIDATE_MS + 150);
    // The cost: about one read per user and interval, not one per request.
    expect(loads).toBeLessThanOrEqual(users.length * (Math.ceil(worst / REVALIDATE_MS) + 1));
    expect(loads).toBeLessThan(requests / 2);
    // A store that does not revalidate learns of the lost change only by reading Redis: it answers the old
    // value from its near-cache, or (when a slow machine delayed its heartbeat, so it distrusts its
    // subscription: the safe direction) the new value after a read, never the new value without one.
    const loadsOfA = a.stats.loads;
    const seenByA = await runAsUser(users[0]!, () => getUserModel(), { store: a });
    expect(seenByA === 'v1' ? a.stats.loads === loadsOfA : a.stats.loads > loadsOfA).toBe(true);
  });

  it('revalidateInterval 0 answers every request with a Redis read sent after it started: a change written behind the store\'s back is seen by every request that starts after it', async () => {
    const b = await makeStore({ consistency: 'strict', revalidateInterval: 0 });
    const users = Array.from({ length: 10 }, () => randomUUID());
    for (const u of users) await runAsUser(u, () => configureUser({ provider: 'OpenAI', model: 'v0' }), { store: b });
    const ROUNDS = 15;
    let stale = 0;
    let requests = 0;
    await Promise.all(users.map(async (u) => {
      /** When version k was in Redis (written without an invalidation, as when one is lost). */
      const writtenAt: number[] = [0];
      let writing = true;
      const writer = (async () => {
        for (let k = 1; k <= ROUNDS; k++) {
          await sleep(Math.random() * 8);
          await redis().hset(b.keyOf(u), 'f:model', `j:${JSON.stringify(`v${k}`)}`);
          writtenAt[k] = performance.now();
        }
        writing = false;
      })();
      // Readers interleave with the writes, so requests keep starting while a read is in flight.
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (writing) {
          await sleep(Math.random() * 2);
          const started = performance.now();
          const newest = writtenAt.findLastIndex((t) => t !== undefined && t < started);
          const model = await runAsUser(u, () => getUserModel(), { store: b });
          requests++;
          if (Number(String(model).slice(1)) < newest) stale++;
        }
      }));
      await writer;
    }));
    console.log(`[redis-consistency] revalidateInterval 0: ${requests} requests, ${stale} stale, ${b.stats.loads} Redis reads`);
    expect(requests).toBeGreaterThan(users.length * ROUNDS);
    expect(stale).toBe(0);
  });

  it('notices a killed subscription at once, reports it on /ready, and reads everything again once it is back', async () => {
    const secret = generateSecret();
    const a = await makeStore();
    const b = await makeStore();
    const server = createApp({ secret, store: b }).app.listen(0, '127.0.0.1');
    servers.push(server);
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const ready = () => fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ready`)
      .then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
    expect(await ready()).toMatchObject({ status: 200, body: { ready: true, invalidations: 'subscribed' } });
    const user = randomUUID();
    await runAsUser(user, () => configureUser({ provider: 'OpenAI', model: 'v1' }), { store: a });
    expect(await runAsUser(user, () => getUserModel(), { store: b })).toBe('v1');

    const list = String(await redis().call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
    const id = list.split('\n').find((line) => line.includes(`name=koa-user-context:${b.instanceId}:sub`))?.match(/id=(\d+)/)?.[1];
    expect(id).toBeDefined();
    await redis().call('CLIENT', 'KILL', 'ID', id!);
    // A write while b is not subscribed: its invalidation is lost for b.
    await runAsUser(user, () => configureUser({ model: 'v2' }), { store: a });
    const lost = await ready();
    expect(lost.status).toBe(503);
    expect(['disconnected', 'unconfirmed']).toContain(lost.body['invalidations']);
    // Requests meanwhile read Redis instead of trusting the near-cache.
    expect(await runAsUser(user, () => getUserModel(), { store: b })).toBe('v2');
    expect(await b.whenReady(5_000)).toBe(true);
    expect(await ready()).toMatchObject({ status: 200, body: { invalidations: 'subscribed', subscriptionLosses: 1 } });
    expect(await runAsUser(user, () => getUserModel(), { store: b })).toBe('v2');
  });
});
