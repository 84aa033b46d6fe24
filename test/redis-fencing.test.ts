/**
 * Fenced writes: a write the store answered with an error is never applied
 * afterwards. A redis-server started by this test (its own port) is stalled
 * with DEBUG SLEEP longer than the stores' commandTimeout while writes sit
 * in its socket, the situation measured in issue 14: configure X got a 503
 * on instance A, configure W was then acknowledged on instance B, and Redis
 * executed X after W, so both instances served X from then on.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createSharedStore } from '../examples/app.js';
import { ContextStoreUnavailableError, configureUser, getUserModel, runAsUser } from '../src/index.js';
import type { RedisContextStore, RedisContextStoreOptions } from '../src/redis.js';
import { OWN_PORTS_FROM, OwnRedisServer, adminClient, freePort, requireRedisServerBinary, runPrefix, sleep } from './helpers/redis.js';

const available = requireRedisServerBinary('Redis fencing tests');
const TIMEOUT_MS = 300;
const PROBES = 20;

describe.skipIf(!available)('fenced writes (a stall longer than commandTimeout)', () => {
  let redis: OwnRedisServer | undefined;
  const stores: RedisContextStore[] = [];
  const clients: Redis[] = [];

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await redis?.destroy();
    redis = undefined;
  });

  async function start(persist: boolean): Promise<OwnRedisServer> {
    redis = await OwnRedisServer.start({ persist, port: await freePort(OWN_PORTS_FROM), args: ['--enable-debug-command', 'local'] });
    return redis;
  }

  async function store(options: Partial<RedisContextStoreOptions>): Promise<RedisContextStore> {
    const s = createSharedStore({ redis: redis!.url, commandTimeout: TIMEOUT_MS, encryptionKey: randomBytes(32), secretFields: [], ...options });
    stores.push(s);
    expect(await s.whenReady(5_000)).toBe(true);
    return s;
  }

  const write = (s: RedisContextStore, user: string, model: string) =>
    runAsUser(user, () => configureUser({ provider: 'OpenAI', model }), { store: s });
  const read = (s: RedisContextStore, user: string) => runAsUser(user, () => getUserModel(), { store: s });

  async function fencedCount(admin: Redis): Promise<number> {
    const info = await admin.info('errorstats');
    return Number(/errorstat_KUC_FENCED:count=(\d+)/.exec(info)?.[1] ?? 0);
  }

  it(`${PROBES} users: X answered 503 during the stall, W acknowledged on the other instance after it: both serve W, Redis holds W, X was refused`, async () => {
    const server = await start(false);
    const keyPrefix = runPrefix('fence');
    const a = await store({ keyPrefix });
    const b = await store({ keyPrefix });
    const admin = adminClient(server.url);
    clients.push(admin);
    const users = Array.from({ length: PROBES }, () => randomUUID());
    await Promise.all(users.map((u) => write(a, u, `v1:${u}`)));

    // The hazard is real: a plain client's HSET sent during a stall, given up
    // after the same timeout, is applied when Redis wakes up.
    const plain = new Redis(server.url);
    clients.push(plain);
    expect(await plain.ping()).toBe('PONG'); // connected before the stall
    const control = `${keyPrefix}control`;
    const stallControl = admin.call('DEBUG', 'SLEEP', '0.6');
    await sleep(50);
    const gaveUp = await Promise.race([plain.set(control, 'late').then(() => 'answered'), sleep(TIMEOUT_MS).then(() => 'timed out')]);
    expect(gaveUp).toBe('timed out');
    await stallControl;
    for (let i = 0; i < 40 && (await admin.get(control)) === null; i++) await sleep(50);
    expect(await admin.get(control)).toBe('late');

    // Now the store's writes, stalled the same way. A has every user near-cached
    // and current, so each configure goes straight to the COMMIT script.
    expect(await a.whenReady(5_000)).toBe(true);
    for (const u of users) expect(await read(a, u)).toBe(`v1:${u}`);
    const before = await fencedCount(admin);
    const stall = admin.call('DEBUG', 'SLEEP', '1.2');
    await sleep(50);
    const started = Date.now();
    const xs = await Promise.allSettled(users.map((u) => write(a, u, `X:${u}`)));
    const waited = Date.now() - started;
    for (const x of xs) {
      expect(x.status).toBe('rejected');
      expect((x as PromiseRejectedResult).reason).toBeInstanceOf(ContextStoreUnavailableError);
    }
    expect(waited).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(waited).toBeLessThan(1_100); // the 503 came from the timeout, not from Redis waking up
    await stall; // Redis wakes up and executes the X scripts still in its socket: each is refused
    for (let i = 0; i < 40 && (await fencedCount(admin)) - before < PROBES; i++) await sleep(50);
    expect((await fencedCount(admin)) - before).toBe(PROBES);
    expect(await b.whenReady(5_000)).toBe(true);
    await Promise.all(users.map((u) => write(b, u, `W:${u}`)));
    await sleep(100);
    for (const u of users) {
      expect(await read(a, u)).toBe(`W:${u}`);
      expect(await read(b, u)).toBe(`W:${u}`);
      const stored = await admin.hget(a.keyOf(u), 'f:model');
      expect(stored).toBe(`j:${JSON.stringify(`W:${u}`)}`);
    }
    // X never appeared anywhere: the version went v1 → W (two writes), not three.
    for (const u of users) expect(await admin.hget(a.keyOf(u), 'v')).toBe('2');
  });

  it('a write that ioredis replays after a reconnection (autoResendUnfulfilledCommands) is refused, not applied after its 503', async () => {
    const server = await start(true);
    const keyPrefix = runPrefix('replay');
    // A client configured to queue and replay: the store warns, and its fence still holds.
    const client = new Redis(server.url, { enableOfflineQueue: true, autoResendUnfulfilledCommands: true, maxRetriesPerRequest: null });
    client.on('error', () => {});
    clients.push(client);
    const a = await store({ keyPrefix, redis: client });
    const user = randomUUID();
    await write(a, user, 'v1');
    const admin = adminClient(server.url);
    clients.push(admin);

    const stall = admin.call('DEBUG', 'SLEEP', '1').catch(() => 'killed');
    await sleep(50);
    await expect(write(a, user, 'X')).rejects.toBeInstanceOf(ContextStoreUnavailableError);
    // The write is still in ioredis's queue of sent commands: kill Redis under it (its AOF keeps v1).
    await server.kill();
    await stall;
    admin.disconnect();
    await server.restart();
    const after = adminClient(server.url);
    clients.push(after);
    // ioredis reconnects and resends the EVALSHA; Redis refuses it (past its deadline).
    for (let i = 0; i < 100 && (await fencedCount(after)) === 0; i++) await sleep(50);
    expect(await fencedCount(after)).toBe(1);
    expect(await after.hget(a.keyOf(user), 'f:model')).toBe(`j:${JSON.stringify('v1')}`);
    expect(await a.whenReady(5_000)).toBe(true);
    expect(await read(a, user)).toBe('v1');
  });
});
