/**
 * RedisContextStore behind Redis Sentinel: a primary, a replica and one
 * sentinel (redis-server processes started by this test, ports from 44000),
 * the stores connected with `new Redis({ sentinels, name })`. Under load
 * (50 users on two instances, client-side ledger), a graceful failover
 * (SENTINEL FAILOVER) and then a SIGKILL of the new primary (the sentinel
 * promotes the other server after `down-after-milliseconds` 1 s): no wrong
 * user, no torn pair, no write answered 503 applied later, back within
 * seconds. Replication is asynchronous, so a write acknowledged just before
 * the kill may be lost with the primary: the ledger allows that (a partial
 * loss) and counts it.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSecret } from '../examples/tokens.js';
import type { RedisConsistency } from '../src/redis.js';
import { OwnSentinelGroup, adminClient, requireRedisServerBinary, sleep } from './helpers/redis.js';
import {
  measureRecovery,
  newUsers,
  runUser,
  startInstances,
  verifyRun,
  type Fault,
  type Instance,
} from './support/redis-ledger.js';

const available = requireRedisServerBinary('Redis Sentinel tests');
const USERS = 50;

describe.skipIf(!available)('RedisContextStore behind Redis Sentinel (primary, replica, sentinel)', () => {
  let group: OwnSentinelGroup;
  const clients: Redis[] = [];
  let instances: Instance[] = [];

  beforeAll(async () => {
    group = await OwnSentinelGroup.start();
  }, 40_000);

  afterEach(async () => {
    for (const i of instances) i.server.close();
    await Promise.all(instances.map((i) => i.store.close()));
    instances = [];
    for (const c of clients.splice(0)) c.disconnect();
  });

  afterAll(async () => {
    await group?.destroy();
  });

  function sentinelClient(): Redis {
    const c = new Redis({
      sentinels: group.sentinels,
      name: group.name,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
    c.on('error', () => {});
    clients.push(c);
    return c;
  }

  for (const mode of ['strict', 'available'] as const satisfies readonly RedisConsistency[]) {
    it(`[${mode}] graceful failover, then kill -9 of the primary, under load`, async () => {
      await group.waitReplicated();
      const secret = generateSecret();
      const started = await startInstances(() => sentinelClient(), secret, { consistency: mode, commandTimeout: 800 });
      instances = started.instances;
      const users = newUsers(secret, USERS);
      const failures: string[] = [];
      let stopped = false;
      const load = Promise.all(users.map((u) => runUser(u, instances, () => stopped, failures)));
      const faults: Fault[] = [];
      try {
        await sleep(800);
        const before = await group.primaryPort();
        let start = Date.now();
        const s = adminClient(`redis://127.0.0.1:${group.sentinelPort}`);
        await s.call('SENTINEL', 'FAILOVER', group.name);
        s.disconnect();
        while ((await group.primaryPort()) === before && Date.now() - start < 10_000) await sleep(50);
        let end = Date.now();
        faults.push({ kind: 'SENTINEL FAILOVER', start, end, loses: false, recoveryMs: await measureRecovery(instances, secret, end) });

        await group.waitReplicated();
        await sleep(800);
        const primary = await group.primaryPort();
        start = Date.now();
        await group.server(primary).kill();
        while ((await group.primaryPort()) === primary && Date.now() - start < 15_000) await sleep(50);
        end = Date.now();
        faults.push({
          kind: 'kill -9 primary (promotion)', start, end, loses: true, partial: true,
          recoveryMs: await measureRecovery(instances, secret, end),
        });
        await group.server(primary).restart(); // comes back as a replica of the new primary
        await sleep(600);
      } finally {
        stopped = true;
        await load;
      }
      await verifyRun({
        tag: 'redis-sentinel', scenario: 'sentinel: graceful failover, kill -9 primary', mode, users, instances, faults, failures,
      });
    }, 60_000);
  }
});
