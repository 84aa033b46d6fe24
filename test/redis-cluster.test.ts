/**
 * RedisContextStore on a local Redis Cluster: three masters (redis-server
 * processes started by this test, ports from 44000, no replicas, nothing on
 * disk) created with `redis-cli --cluster create`. Two stores use their own
 * ioredis `Cluster` clients, as two instances would.
 *
 *   - the options accept a `Cluster` (typed); the client-options warning
 *     fires for one that queues commands and not for one that fails fast;
 *   - the scripts never touch two slots (0 CROSSSLOT), keys land on every
 *     master, invalidations cross nodes;
 *   - a subscription lost on any node is noticed (a heartbeat through every
 *     master) and `/ready` reports it;
 *   - under load (100 users on two instances, client-side ledger) with the
 *     pub/sub connections killed, one master stalled longer than the
 *     command timeout, and one master killed (SIGKILL) and restarted empty:
 *     no wrong user, no torn pair, no write answered 503 applied later, back
 *     within seconds; stale answers only during a fault, and with
 *     `consistency: 'strict'` never older than its `maxStaleness`;
 *   - the master that holds both instances' subscribers frozen (SIGSTOP
 *     1.5 s: no error, no close, nothing relayed) under load: strict serves
 *     no answer older than `maxStaleness`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateSecret } from '../examples/tokens.js';
import { configureUser, getUserModel, runAsUser } from '../src/index.js';
import { RedisContextStore, type RedisConsistency } from '../src/redis.js';
import { createSharedStore } from '../examples/app.js';
import { OwnRedisCluster, adminClient, requireRedisServerBinary, runPrefix, sleep } from './helpers/redis.js';
import {
  VISIBLE_AFTER_MS,
  measureRecovery,
  newUsers,
  runUser,
  startInstances,
  verifyRun,
  type Fault,
  type Instance,
} from './support/redis-ledger.js';

const available = requireRedisServerBinary('Redis Cluster tests');
const USERS = 100;
const COMMAND_TIMEOUT_MS = 800;
const HEARTBEAT_MS = 1_000;

describe.skipIf(!available)('RedisContextStore on a 3-master Redis Cluster', () => {
  let cluster: OwnRedisCluster;
  const clients: Cluster[] = [];
  const stores: RedisContextStore[] = [];
  let instances: Instance[] = [];

  beforeAll(async () => {
    cluster = await OwnRedisCluster.start(3, ['--enable-debug-command', 'local']);
  }, 60_000);

  afterEach(async () => {
    for (const i of instances) i.server.close();
    await Promise.all([...stores.splice(0), ...instances.map((i) => i.store)].map((s) => s.close()));
    instances = [];
    for (const c of clients.splice(0)) c.disconnect();
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  /** A Cluster client that fails fast (what the store expects). */
  function failFast(): Cluster {
    const c = new Cluster(cluster.startupNodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } });
    c.on('error', () => {});
    clients.push(c);
    return c;
  }

  /** The index of the master holding most of these instances' subscriber connections. */
  async function subscribersNode(instanceIds: readonly string[]): Promise<number> {
    const counts = await Promise.all(cluster.nodes.map(async (n) => {
      const c = adminClient(n.url);
      try {
        const list = String(await c.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
        return instanceIds.filter((id) => list.includes(`name=koa-user-context:${id}:sub`)).length;
      } finally {
        c.disconnect();
      }
    }));
    return counts.indexOf(Math.max(...counts));
  }

  async function nodeInfo(section: string): Promise<string[]> {
    return Promise.all(cluster.nodes.map(async (n) => {
      const c = adminClient(n.url);
      try {
        return await c.info(section);
      } finally {
        c.disconnect();
      }
    }));
  }

  it('accepts a Cluster: warns only for one that queues commands, 0 CROSSSLOT, keys on every master, invalidations cross nodes', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(String(w.code));
    process.on('warning', onWarning);
    try {
      const keyPrefix = runPrefix('cluster');
      const encryptionKey = randomBytes(32);
      const a = createSharedStore({ redis: failFast(), keyPrefix, encryptionKey });
      const b = createSharedStore({ redis: failFast(), keyPrefix, encryptionKey });
      stores.push(a, b);
      expect(await a.whenReady(10_000)).toBe(true);
      expect(await b.whenReady(10_000)).toBe(true);
      await sleep(10);
      expect(warnings).not.toContain('KUC_REDIS_CLIENT_OPTIONS');
      expect(a.readiness()).toMatchObject({ ready: true, deployment: 'cluster', invalidations: 'subscribed', clock: 'measured' });

      const users = Array.from({ length: 300 }, () => randomUUID());
      await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ provider: 'OpenAI', model: `v1:${u}` }), { store: a })));
      await Promise.all(users.map(async (u) => expect(await runAsUser(u, () => getUserModel(), { store: b })).toBe(`v1:${u}`)));
      // b now holds every user; a's writes reach b through whichever node the key lives on.
      await Promise.all(users.map((u) => runAsUser(u, () => configureUser({ model: `v2:${u}` }), { store: a })));
      await sleep(VISIBLE_AFTER_MS);
      await Promise.all(users.map(async (u) => expect(await runAsUser(u, () => getUserModel(), { store: b })).toBe(`v2:${u}`)));
      await Promise.all(users.slice(0, 50).map((u) => b.deleteContext(u)));
      await sleep(VISIBLE_AFTER_MS);
      expect(users.slice(0, 50).some((u) => a.has(u) || b.has(u))).toBe(false);

      const keyspace = await nodeInfo('keyspace');
      expect(keyspace.every((k) => /keys=\d+/.test(k))).toBe(true); // every master holds contexts
      const errors = await nodeInfo('errorstats');
      expect(errors.join('\n')).not.toContain('CROSSSLOT');

      const queued = new Cluster(cluster.startupNodes);
      queued.on('error', () => {});
      clients.push(queued);
      stores.push(createSharedStore({ redis: queued, keyPrefix, encryptionKey }));
      await sleep(10);
      expect(warnings).toContain('KUC_REDIS_CLIENT_OPTIONS');
    } finally {
      process.off('warning', onWarning);
    }
  }, 30_000);

  it("notices a subscription lost on the subscriber's node (stalled: no error, no close) and reports it on readiness", async () => {
    const keyPrefix = runPrefix('cluster-sub');
    const store = createSharedStore({ redis: failFast(), keyPrefix, encryptionKey: randomBytes(32), heartbeatInterval: HEARTBEAT_MS });
    stores.push(store);
    expect(await store.whenReady(10_000)).toBe(true);
    // Which master holds the store's subscriber connection?
    const lists = await Promise.all(cluster.nodes.map(async (n) => {
      const c = adminClient(n.url);
      try {
        return String(await c.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
      } finally {
        c.disconnect();
      }
    }));
    const index = lists.findIndex((l) => l.includes(`name=koa-user-context:${store.instanceId}:sub`));
    expect(index).toBeGreaterThanOrEqual(0);
    const admin = adminClient(cluster.nodes[index]!.url);
    try {
      const stalled = admin.call('DEBUG', 'SLEEP', '4');
      const since = Date.now();
      while (store.readiness().invalidations === 'subscribed' && Date.now() - since < 4_000) await sleep(20);
      const noticedMs = Date.now() - since;
      expect(store.readiness()).toMatchObject({ ready: false });
      expect(noticedMs).toBeLessThanOrEqual(3 * HEARTBEAT_MS + 300);
      await stalled;
      expect(await store.whenReady(10_000)).toBe(true);
      expect(store.readiness().subscriptionLosses).toBeGreaterThanOrEqual(1);
      console.log(`[redis-cluster] subscriber's node stalled: noticed after ${noticedMs} ms (heartbeatInterval ${HEARTBEAT_MS} ms)`);
    } finally {
      admin.disconnect();
    }
  }, 30_000);

  for (const mode of ['strict', 'available'] as const satisfies readonly RedisConsistency[]) {
    it(`[${mode}] 100 users on two instances through pub/sub kills, a stalled master and a master killed and restarted`, async () => {
      const secret = generateSecret();
      const started = await startInstances(() => failFast(), secret, {
        consistency: mode, commandTimeout: COMMAND_TIMEOUT_MS, heartbeatInterval: HEARTBEAT_MS,
      });
      instances = started.instances;
      const users = newUsers(secret, USERS);
      const failures: string[] = [];
      let stopped = false;
      const load = Promise.all(users.map((u) => runUser(u, instances, () => stopped, failures)));
      const faults: Fault[] = [];
      const victim = cluster.nodes[1]!;
      try {
        const steps: [string, boolean, () => Promise<unknown>][] = [
          ['pubsub kill (every node)', false, async () => {
            await Promise.all(cluster.nodes.map(async (n) => {
              const c = adminClient(n.url);
              try {
                await c.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
              } finally {
                c.disconnect();
              }
            }));
          }],
          ['one master stalled 1.5 s', false, async () => {
            const c = adminClient(victim.url);
            try {
              await c.call('DEBUG', 'SLEEP', '1.5');
            } finally {
              c.disconnect();
            }
          }],
          ['one master kill -9 + restart (its data lost)', true, async () => {
            await victim.kill();
            await sleep(300);
            await victim.restart();
            await cluster.waitOk();
          }],
        ];
        for (const [kind, loses, fault] of steps) {
          await sleep(700 + Math.random() * 400);
          const lossesBefore = instances.map((i) => i.store.readiness().subscriptionLosses);
          const start = Date.now();
          await fault();
          const end = Date.now();
          faults.push({ kind, start, end, loses, partial: loses, recoveryMs: await measureRecovery(instances, secret, end) });
          if (loses) {
            // The restarted master kept its address and the subscriber may sit on another master: only its
            // changed run_id tells the instances that the contexts they cached from it may be gone.
            await vi.waitFor(
              () => expect(instances.map((i, k) => i.store.readiness().subscriptionLosses > lossesBefore[k]!)).toEqual(instances.map(() => true)),
              { timeout: 5 * HEARTBEAT_MS },
            );
          }
        }
        await sleep(600);
      } finally {
        stopped = true;
        await load;
      }
      const { stats } = await verifyRun({
        tag: 'redis-cluster', scenario: 'cluster: pubsub kill, master stall, master restart', mode, users, instances, faults,
        failures, ...(mode === 'strict' ? { strictStaleBoundMs: instances[0]!.store.maxStaleness } : {}),
      });
      expect(stats.unavailable503).toBeGreaterThan(0);
    }, 60_000);
  }

  it("[strict] the subscribers' master frozen (SIGSTOP 1.5 s) under load: no answer older than maxStaleness (default 250 ms)", async () => {
    const secret = generateSecret();
    const started = await startInstances(() => failFast(), secret, {
      consistency: 'strict', commandTimeout: COMMAND_TIMEOUT_MS, heartbeatInterval: HEARTBEAT_MS,
    });
    instances = started.instances;
    expect(instances.map((i) => i.store.maxStaleness)).toEqual([250, 250]);
    const users = newUsers(secret, 50);
    const failures: string[] = [];
    let stopped = false;
    const load = Promise.all(users.map((u) => runUser(u, instances, () => stopped, failures)));
    const faults: Fault[] = [];
    try {
      await sleep(1_000 + Math.random() * 400);
      const victim = cluster.nodes[await subscribersNode(instances.map((i) => i.store.instanceId))]!;
      const start = Date.now();
      victim.pause();
      try {
        await sleep(1_500);
      } finally {
        victim.resume();
      }
      const end = Date.now();
      faults.push({ kind: "subscribers' master SIGSTOP 1.5 s", start, end, loses: false, recoveryMs: await measureRecovery(instances, secret, end) });
      await sleep(600);
    } finally {
      stopped = true;
      await load;
    }
    const { stats, problems } = await verifyRun({
      tag: 'redis-cluster', scenario: "cluster: subscribers' master SIGSTOP 1.5 s", mode: 'strict', users, instances, faults,
      failures, strictStaleBoundMs: instances[0]!.store.maxStaleness,
    });
    // Users on the frozen master were answered 503 (their reads timed out); the others were read from Redis.
    expect(stats.unavailable503).toBeGreaterThan(0);
    expect(instances.some((i) => i.store.stats.strictReads > 0)).toBe(true);
    console.log(`[redis-cluster] subscribers' master frozen: stale answers ${problems.staleInFault.length}, ` +
      `max ${Math.max(0, ...problems.staleLagsMs)} ms after the ack`);
  }, 60_000);
});
