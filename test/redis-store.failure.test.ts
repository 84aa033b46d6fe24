/**
 * RedisContextStore when Redis goes away: a redis-server started by the test
 * on its own port is paused in the middle of a load and killed, then
 * restarted on the same port (its AOF keeps the data). Two example apps
 * (two instances) serve HTTP through it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, createSharedStore } from '../examples/app.js';
import { fakeLlmResources } from './support/fake-llm.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import type { RedisContextStore } from '../src/redis.js';
import { OwnRedisServer, adminClient, requireRedisServerBinary, runPrefix, sleep } from './helpers/redis.js';

const available = requireRedisServerBinary('RedisContextStore failure tests');

describe.skipIf(!available)('RedisContextStore with Redis failing', () => {
  let redis: OwnRedisServer | undefined;
  const stores: RedisContextStore[] = [];
  const servers: Server[] = [];

  afterAll(async () => {
    for (const server of servers) server.close();
    await Promise.all(stores.map((s) => s.close()));
    await redis?.destroy();
  });

  it('503s what it cannot serve, keeps serving cached contexts, never half-applies a configure, and recovers by itself', async () => {
    redis = await OwnRedisServer.start();
    const secret = generateSecret();
    const keyPrefix = runPrefix('failure');
    const encryptionKey = randomBytes(32);
    const [a, b] = await Promise.all(
      [0, 1].map(async () => {
        const store = createSharedStore({ redis: redis!.url, keyPrefix, encryptionKey, commandTimeout: 5_000, resources: fakeLlmResources() });
        stores.push(store);
        expect(await store.whenReady(5_000)).toBe(true);
        const { app } = createApp({ secret, store });
        const server = app.listen(0, '127.0.0.1');
        servers.push(server);
        await new Promise<void>((resolve) => server.once('listening', resolve));
        return { store, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
      }),
    );
    const call = async (base: string, token: string, path: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), json: (await res.json()) as Record<string, unknown> };
    };
    const cached = randomUUID(); // b has this user in its near-cache
    const remote = randomUUID(); // configured on a; b never saw it
    const tCached = mintToken(secret, cached);
    const tRemote = mintToken(secret, remote);
    expect((await call(a!.base, tCached, '/configure', { provider: 'Google', model: 'g-1' })).status).toBe(200);
    expect((await call(a!.base, tRemote, '/configure', { provider: 'Anthropic', model: 'c-2' })).status).toBe(200);
    await sleep(100);
    expect((await call(b!.base, tCached, '/query', { prompt: 'hi' })).json).toMatchObject({ provider: 'Google', model: 'g-1' });

    // Pause Redis so b's load of `remote` is in flight, then kill the server under it.
    const admin = adminClient(redis.url);
    await admin.client('PAUSE', 10_000, 'ALL');
    const midLoad = call(b!.base, tRemote, '/query', { prompt: 'hi' });
    let settled = false;
    void midLoad.finally(() => (settled = true));
    await sleep(150);
    expect(settled).toBe(false); // the load is waiting on the paused Redis
    admin.disconnect();
    const outages: unknown[] = [];
    const rejections: unknown[] = [];
    b!.store.events.on('storeUnavailable', (e) => outages.push(e));
    b!.store.events.on('tokenRejected', (e) => rejections.push(e));
    await redis.kill();
    const failed = await midLoad;
    // A store outage is reported as such, never as a rejected credential.
    expect(outages).toEqual([{ userUuid: remote, code: 'ERR_CONTEXT_STORE_UNAVAILABLE' }]);
    expect(rejections).toEqual([]);
    expect(failed.status).toBe(503);
    expect(failed.json['error']).toBe('context_store_unavailable');
    expect(typeof failed.json['message']).toBe('string');
    expect(failed.retryAfter).toBe('5');

    // While Redis is down: cached contexts serve, uncached ones 503, configures 503.
    expect(await call(b!.base, tCached, '/query', { prompt: 'still there?' })).toMatchObject({
      status: 200,
      json: { provider: 'Google', model: 'g-1' },
    });
    expect(await call(b!.base, tRemote, '/query', { prompt: 'hi' })).toMatchObject({
      status: 503,
      json: { error: 'context_store_unavailable' },
    });
    expect(await call(b!.base, tCached, '/configure', { provider: 'OpenAI', model: 'o-1' })).toMatchObject({
      status: 503,
      json: { error: 'context_store_unavailable' },
    });
    // Not half-applied here: the failed configure changed nothing.
    expect((await call(b!.base, tCached, '/query', { prompt: 'hi' })).json).toMatchObject({ provider: 'Google', model: 'g-1' });
    const notReady = await fetch(`${b!.base}/ready`);
    expect(notReady.status).toBe(503);
    expect(b!.store.ready).toBe(false);

    // Redis comes back on the same port: both instances reconnect by themselves.
    await redis.restart();
    expect(await b!.store.whenReady(10_000)).toBe(true);
    expect(await a!.store.whenReady(10_000)).toBe(true);
    expect((await fetch(`${b!.base}/ready`)).status).toBe(200);
    expect(await call(b!.base, tRemote, '/query', { prompt: 'hi' })).toMatchObject({
      status: 200,
      json: { provider: 'Anthropic', model: 'c-2' },
    });
    // Nor in Redis: the stored configuration is the last acknowledged one.
    const check = adminClient(redis.url);
    const raw = await check.hgetall(b!.store.keyOf(cached));
    check.disconnect();
    expect([raw['f:provider'], raw['f:model'], raw['v']]).toEqual(['j:"Google"', 'j:"g-1"', '1']);
    // Writes work again and reach the other instance.
    expect((await call(b!.base, tCached, '/configure', { provider: 'OpenAI', model: 'o-1' })).status).toBe(200);
    await sleep(100);
    expect((await call(a!.base, tCached, '/query', { prompt: 'hi' })).json).toMatchObject({ provider: 'OpenAI', model: 'o-1' });
  });
});
