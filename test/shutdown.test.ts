/**
 * Graceful shutdown with a real Koa server: `store.close()` while slow
 * requests of many users are in flight.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  StoreClosedError,
  configureUser,
  getUserLlmInstance,
  getUserModel,
  runAsUser,
  userContext,
  type UserConfig,
} from '../src/index.js';

class TrackedClient {
  static all: TrackedClient[] = [];
  disposals = 0;
  usedAfterDispose = false;
  constructor(readonly userUuid: string, readonly model: string | null) {
    TrackedClient.all.push(this);
  }
  async close(): Promise<void> {
    this.disposals++;
  }
}

/** A promise the test resolves by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const SECRET = randomBytes(48).toString('base64url');
const token = (sub: string) => jwt.sign({ sub }, SECRET, { algorithm: 'HS256', expiresIn: 600 });
const tick = () => new Promise((r) => setImmediate(r));

let server: Server | undefined;
afterEach(async () => {
  TrackedClient.all = [];
  if (server !== undefined) await new Promise((r) => server!.close(r));
  server = undefined;
});

async function start(release: Promise<void>, options: { reconfigure?: boolean } = {}) {
  const store = new ContextStore({
    sweepInterval: 0,
    resources: { llmInstance: { create: (cfg: UserConfig, user: string) => new TrackedClient(user, cfg.model) } },
  });
  let inside = 0;
  const app = new Koa();
  app.silent = true;
  app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
  app.use(async (ctx) => {
    if (ctx.path === '/configure') {
      await configureUser({ provider: 'Google', model: String(ctx.query['model']) });
      ctx.body = { ok: true };
      return;
    }
    const client = getUserLlmInstance() as unknown as TrackedClient;
    inside++;
    await release;
    if (options.reconfigure === true) {
      await configureUser({ model: `${getUserModel()}-v2` });
    }
    const now = getUserLlmInstance() as unknown as TrackedClient;
    if (client.disposals > 0 || now.disposals > 0) client.usedAfterDispose = true;
    ctx.body = { user: client.userUuid, model: getUserModel(), clientModel: now.model, disposed: client.disposals };
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server!.once('listening', resolve));
  const agent = request(server);
  return { store, agent, inside: () => inside };
}

describe('graceful shutdown', () => {
  it('drains slow requests of many users, refuses new ones with 503 shutting_down, then disposes every resource once', async () => {
    const release = gate();
    const { store, agent, inside } = await start(release.promise);
    const users = Array.from({ length: 12 }, (_, i) => ({ id: randomUUID(), model: `model-${i}` }));
    await Promise.all(users.map((u) => agent.post(`/configure?model=${u.model}`).set('Authorization', `Bearer ${token(u.id)}`).expect(200)));

    const inFlight = users.map((u) => agent.get('/work').set('Authorization', `Bearer ${token(u.id)}`).then((r) => r));
    while (inside() < users.length) await tick();
    expect(store.scopesInFlight).toBe(users.length);

    let closed = false;
    const closing = store.close({ timeout: 60_000 }).then(() => (closed = true));
    expect(store.closed).toBe(true);

    // New requests, new scopes and new users are refused while draining.
    const refused = await agent.get('/work').set('Authorization', `Bearer ${token(users[0]!.id)}`);
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual({ error: 'shutting_down', message: expect.any(String) });
    expect(refused.headers['retry-after']).toBe('5');
    const stranger = await agent.get('/work').set('Authorization', `Bearer ${token(randomUUID())}`);
    expect(stranger.status).toBe(503);
    expect(() => runAsUser(users[1]!.id, () => 1, { store })).toThrow(StoreClosedError);

    for (let i = 0; i < 20; i++) await tick();
    expect(closed).toBe(false);
    expect(TrackedClient.all.every((c) => c.disposals === 0)).toBe(true);

    release.open();
    const responses = await Promise.all(inFlight);
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ user: users[i]!.id, model: users[i]!.model, clientModel: users[i]!.model, disposed: 0 });
    }
    await closing;
    expect(store.size).toBe(0);
    expect(store.scopesInFlight).toBe(0);
    expect(TrackedClient.all).toHaveLength(users.length);
    expect(TrackedClient.all.map((c) => c.disposals)).toEqual(users.map(() => 1));
    expect(TrackedClient.all.some((c) => c.usedAfterDispose)).toBe(false);

    // A second and third close are harmless: same promise, nothing disposed twice.
    expect(store.close()).toBe(store.close());
    await store.close({ timeout: 1 });
    expect(TrackedClient.all.map((c) => c.disposals)).toEqual(users.map(() => 1));
  });

  it('disposes the old and the new client once each when an in-flight request reconfigures during the drain', async () => {
    const release = gate();
    const { store, agent, inside } = await start(release.promise, { reconfigure: true });
    const users = Array.from({ length: 6 }, (_, i) => ({ id: randomUUID(), model: `m${i}` }));
    for (const u of users) await agent.post(`/configure?model=${u.model}`).set('Authorization', `Bearer ${token(u.id)}`).expect(200);
    const inFlight = users.map((u) => agent.get('/work').set('Authorization', `Bearer ${token(u.id)}`).then((r) => r));
    while (inside() < users.length) await tick();
    const closing = store.close({ timeout: 60_000 });
    release.open();
    const responses = await Promise.all(inFlight);
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ user: users[i]!.id, model: `${users[i]!.model}-v2`, clientModel: `${users[i]!.model}-v2` });
    }
    await closing;
    expect(TrackedClient.all).toHaveLength(users.length * 2);
    expect(TrackedClient.all.map((c) => c.disposals)).toEqual(TrackedClient.all.map(() => 1));
  });

  it('stops waiting after the timeout, disposes everything once, and the late request ending does not dispose again', async () => {
    const release = gate();
    const { store, agent, inside } = await start(release.promise);
    const user = randomUUID();
    await agent.post('/configure?model=slow').set('Authorization', `Bearer ${token(user)}`).expect(200);
    const hanging = agent.get('/work').set('Authorization', `Bearer ${token(user)}`).then((r) => r);
    while (inside() < 1) await tick();
    await store.close({ timeout: 50 });
    expect(store.scopesInFlight).toBe(0);
    expect(TrackedClient.all.map((c) => c.disposals)).toEqual([1]);
    release.open();
    const res = await hanging;
    expect(res.status).toBe(200);
    expect(res.body.disposed).toBe(1); // it outlived the timeout: its client was closed under it, as documented
    expect(TrackedClient.all.map((c) => c.disposals)).toEqual([1]);
  });

  it('closes at once when nothing is in flight, and a second close() is harmless', async () => {
    const { store, agent } = await start(Promise.resolve());
    const user = randomUUID();
    await agent.post('/configure?model=a').set('Authorization', `Bearer ${token(user)}`).expect(200);
    await agent.get('/work').set('Authorization', `Bearer ${token(user)}`).expect(200);
    const first = store.close();
    const second = store.close({ timeout: 0 });
    expect(second).toBe(first);
    await Promise.all([first, second]);
    expect(TrackedClient.all.map((c) => c.disposals)).toEqual([1]);
    const after = await agent.get('/work').set('Authorization', `Bearer ${token(user)}`);
    expect(after.status).toBe(503);
    expect(after.body.error).toBe('shutting_down');
  });
});
