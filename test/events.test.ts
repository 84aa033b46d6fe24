import { randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ContextEvents,
  ContextStore,
  UserContextMissingError,
  bindToCurrentUser,
  configureUser,
  getUserLlmInstance,
  getUserProvider,
  runAsUser,
  setDefaultStore,
  userContext,
  type ContextEventMap,
} from '../src/index.js';

const SECRET = randomBytes(48).toString('base64url');
const sign = (sub: unknown, extra: Record<string, unknown> = {}, expiresIn = 600) =>
  jwt.sign({ ...extra, sub }, SECRET, { algorithm: 'HS256', expiresIn });

type Recorded = { [K in keyof ContextEventMap]: ContextEventMap[K][] };

function record(events: ContextEvents): Recorded {
  const seen: Recorded = {
    contextLoaded: [], evicted: [], tokenCacheHit: [], tokenCacheMiss: [], tokenRejected: [], storeUnavailable: [], resourceDisposed: [],
    contextMissing: [], writeFailed: [],
  };
  for (const name of Object.keys(seen) as (keyof Recorded)[]) {
    events.on(name, (e) => (seen[name] as unknown[]).push(e));
  }
  return seen;
}

class Client {
  closed = false;
  constructor(readonly label: string, readonly failClose = false) {}
  async close(): Promise<void> {
    this.closed = true;
    if (this.failClose) throw new Error(`close of ${this.label} failed`);
  }
}

const stores: ContextStore[] = [];
function makeStore(options: ConstructorParameters<typeof ContextStore>[0] = {}): ContextStore {
  const store = new ContextStore({ sweepInterval: 0, ...options });
  stores.push(store);
  return store;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe('ContextEvents', () => {
  it('calls listeners in order with the payload, and stops after the unsubscribe', () => {
    const events = new ContextEvents();
    expect(events.listening).toBe(false);
    const calls: string[] = [];
    const off = events.on('contextMissing', (e) => calls.push(`a:${e.fn}`));
    events.on('contextMissing', (e) => calls.push(`b:${e.fn}`));
    expect(events.listening).toBe(true);
    expect(events.listenerCount('contextMissing')).toBe(2);
    events.emit('contextMissing', { fn: 'getUserModel' });
    off();
    events.emit('contextMissing', { fn: 'getUserProvider' });
    expect(calls).toEqual(['a:getUserModel', 'b:getUserModel', 'b:getUserProvider']);
    expect(events.off('contextMissing', () => {})).toBe(false);
  });

  it('a listener removed or added during an emit does not disturb that emit', () => {
    const events = new ContextEvents();
    const calls: string[] = [];
    const second = () => calls.push('second');
    events.on('tokenCacheHit', () => {
      calls.push('first');
      events.off('tokenCacheHit', second);
      events.on('tokenCacheHit', () => calls.push('late'));
    });
    events.on('tokenCacheHit', second);
    events.emit('tokenCacheHit', { userUuid: 'x' });
    expect(calls).toEqual(['first', 'second']);
    calls.length = 0;
    events.emit('tokenCacheHit', { userUuid: 'x' });
    expect(calls).toEqual(['first', 'late']);
  });

  it('a throwing listener is reported once and never breaks the emitter', () => {
    const events = new ContextEvents();
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const after: number[] = [];
      events.on('contextLoaded', () => {
        throw new Error('boom');
      });
      events.on('contextLoaded', () => after.push(1));
      events.emit('contextLoaded', { userUuid: 'u', source: 'created' });
      events.emit('contextLoaded', { userUuid: 'u', source: 'created' });
      expect(after).toEqual([1, 1]);
      const ours = warn.mock.calls.filter((c) => (c as unknown[])[2] === 'KUC_LISTENER_FAILED');
      expect(ours).toHaveLength(1);
      expect(String(ours[0]![0])).toContain('boom');
    } finally {
      warn.mockRestore();
    }
  });

  it('rejects unknown events and non-function listeners', () => {
    const events = new ContextEvents();
    expect(() => events.on('nope' as never, () => {})).toThrow(/Unknown event "nope"/);
    expect(() => events.on('evicted', 42 as never)).toThrow(TypeError);
    expect(() => new ContextStore({ events: {} as never })).toThrow(/options\.events/);
  });
});

describe('store events', () => {
  it('reports a context created once per user, however many interleaved scopes open it', async () => {
    const store = makeStore();
    const seen = record(store.events);
    const users = Array.from({ length: 20 }, () => randomUUID());
    await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 5 }, () =>
          runAsUser(u, async () => {
            await new Promise((r) => setTimeout(r, Math.random() * 5));
          }, { store }),
        ),
      ),
    );
    expect(seen.contextLoaded.map((e) => e.userUuid).sort()).toEqual([...users].sort());
    expect(seen.contextLoaded.every((e) => e.source === 'created')).toBe(true);
  });

  it('reports evictions with their reason: manual, evicted (LRU), expired, inactive, closed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = makeStore({ max: 2, ttl: 60_000 });
    const seen = record(store.events);
    const [a, b, c, d] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    store.currentGeneration(a);
    store.currentGeneration(b);
    store.currentGeneration(c); // a is least recently used → evicted
    expect(store.evict(b, 'manual')).toBe(true);
    vi.setSystemTime(Date.now() + 61_000);
    store.purgeStale(); // c expired
    store.currentGeneration(d);
    vi.setSystemTime(Date.now() + 10_000);
    expect(store.cleanupInactive(5_000)).toBe(1); // d inactive
    const e = randomUUID();
    store.currentGeneration(e);
    await store.close(); // e closed
    expect(seen.evicted.map((x) => [x.userUuid, x.reason])).toEqual([
      [a, 'evicted'],
      [b, 'manual'],
      [c, 'expired'],
      [d, 'inactive'],
      [e, 'closed'],
    ]);
  });

  it("reports 'replaced' when a configure drops live resources, not when they are kept", async () => {
    const built: Client[] = [];
    const store = makeStore({
      resources: {
        llmInstance: { create: (cfg) => { const c = new Client(`${cfg.provider}/${cfg.model}`); built.push(c); return c; } },
      },
    });
    const seen = record(store.events);
    const user = randomUUID();
    await runAsUser(user, async () => {
      await configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
      expect(getUserLlmInstance()).toBeInstanceOf(Client);
      await configureUser({ mcpServerName: 'Teradata MCP' }); // LLM kept: not a dependency
      expect(seen.evicted).toEqual([]);
      await configureUser({ model: 'gemini-2.5-pro' }); // LLM dropped
    }, { store });
    expect(seen.evicted).toEqual([{ userUuid: user, reason: 'replaced', inFlight: 1, resources: ['llmInstance'] }]);
    await store.close();
    expect(built[0]!.closed).toBe(true);
  });

  it('reports each resource disposal once, with its outcome', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const store = makeStore();
      const seen = record(store.events);
      const [a, b] = [randomUUID(), randomUUID()];
      await runAsUser(a, () => configureUser({ llmInstance: new Client('ok'), mcpClient: new Client('bad', true) }), { store });
      await runAsUser(b, () => configureUser({ llmInstance: new Client('b') }), { store });
      store.evict(a);
      await store.close();
      const byUser = (u: string) => seen.resourceDisposed.filter((e) => e.userUuid === u).map((e) => `${e.resource}:${e.ok}`).sort();
      expect(byUser(a)).toEqual(['llmInstance:true', 'mcpClient:false']);
      expect(byUser(b)).toEqual(['llmInstance:true']);
    } finally {
      warn.mockRestore();
    }
  });

  it('an idle store with no listener does not report anything (no listeners needed to work)', async () => {
    const store = makeStore();
    const user = randomUUID();
    await runAsUser(user, () => configureUser({ provider: 'Google', model: 'x', llmInstance: new Client('x') }), { store });
    await runAsUser(user, () => configureUser({ model: 'y' }), { store });
    expect(store.events.listening).toBe(false);
    expect(store.peek(user)?.model).toBe('y');
  });
});

describe('middleware and helper events', () => {
  it('reports token cache misses then hits per user, and rejections with their code', async () => {
    const store = makeStore();
    const seen = record(store.events);
    const app = new Koa();
    app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
    app.use((ctx) => {
      ctx.body = { provider: getUserProvider() };
    });
    const server = app.callback();
    const [a, b] = [randomUUID(), randomUUID()];
    const [ta, tb] = [sign(a), sign(b)];
    for (const t of [ta, tb, ta, ta, tb]) await request(server).get('/').set('Authorization', `Bearer ${t}`).expect(200);
    expect(seen.tokenCacheMiss).toEqual([{ expired: false }, { expired: false }]);
    expect(seen.tokenCacheHit.map((e) => e.userUuid)).toEqual([a, a, b]);

    await request(server).get('/').expect(401);
    await request(server).get('/').set('Authorization', `Bearer ${sign(a, {}, -10)}`).expect(401);
    await request(server).get('/').set('Authorization', 'Basic abc').expect(400);
    await request(server).get('/').set('Authorization', `Bearer ${sign('not-a-uuid')}`).expect(401);
    expect(seen.tokenRejected.map((e) => [e.error, e.code, e.status])).toEqual([
      ['missing_token', 'ERR_MISSING_TOKEN', 401],
      ['token_expired', 'ERR_TOKEN_EXPIRED', 401],
      ['invalid_request', 'ERR_MALFORMED_AUTHORIZATION', 400],
      ['invalid_subject', 'ERR_INVALID_SUBJECT', 401],
    ]);
  });

  it('reports a helper called outside any scope in multi-user mode, naming it', () => {
    const store = makeStore({ mode: 'multi-user' });
    const previous = setDefaultStore(store);
    try {
      const seen = record(store.events);
      expect(() => getUserProvider()).toThrow(UserContextMissingError);
      expect(() => bindToCurrentUser(() => 1)).toThrow(UserContextMissingError);
      expect(seen.contextMissing).toEqual([{ fn: 'getUserProvider' }, { fn: 'bindToCurrentUser' }]);
    } finally {
      if (previous) setDefaultStore(previous);
    }
  });
});
