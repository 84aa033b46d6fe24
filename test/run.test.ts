/** runAsUser and bindToCurrentUser: entering and carrying user scopes outside HTTP. */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  InvalidUserIdError,
  UserContextMissingError,
  bindToCurrentUser,
  configureUser,
  currentUserClaims,
  currentUserUuid,
  getUserLlmInstance,
  getUserModel,
  getUserProvider,
  runAsUser,
  setDefaultStore,
  setUserModel,
} from '../src/index.js';
import { flush, randomDelay } from './support/app.js';
import { clientFactory, type FakeClient } from './support/resources.js';

let store: ContextStore;
beforeEach(() => {
  store = new ContextStore({ mode: 'multi-user' });
  setDefaultStore(store);
});
afterEach(async () => {
  await store.close({ timeout: 100 });
});

describe('runAsUser', () => {
  it('runs a sync function as the user and closes its scope on return', () => {
    const id = randomUUID();
    const result = runAsUser(id, () => ({ user: currentUserUuid(), inFlight: store.scopesInFlight }), {
      claims: { sub: id, role: 'admin' },
    });
    expect(result).toEqual({ user: id, inFlight: 1 });
    expect(store.scopesInFlight).toBe(0);
    expect(currentUserUuid()).toBeUndefined();
  });

  it('keeps the user across awaits and releases the lease only once the promise settles', async () => {
    const id = randomUUID();
    let release!: () => void;
    const done = runAsUser(id, async () => {
      await new Promise<void>((r) => (release = r));
      await randomDelay(3);
      return { user: currentUserUuid(), claims: currentUserClaims() };
    }, { claims: { sub: id, scope: 'jobs' } });
    await flush();
    expect(store.scopesInFlight).toBe(1);
    expect([...store.entries()][0]!.inFlight).toBe(1);
    release();
    await expect(done).resolves.toEqual({ user: id, claims: { sub: id, scope: 'jobs' } });
    expect(store.scopesInFlight).toBe(0);
    expect([...store.entries()][0]!.inFlight).toBe(0);
  });

  it('nests: the inner user wins inside, the outer user is back afterwards', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const seen = await runAsUser(a, async () => {
      await configureUser({ provider: 'A' });
      const inner = await runAsUser(b, async () => {
        await randomDelay(2);
        await configureUser({ provider: 'B' });
        return [currentUserUuid(), getUserProvider()];
      });
      await randomDelay(2);
      return { inner, outer: [currentUserUuid(), getUserProvider()], inFlight: store.scopesInFlight };
    });
    expect(seen).toEqual({ inner: [b, 'B'], outer: [a, 'A'], inFlight: 1 });
    expect(store.scopesInFlight).toBe(0);
  });

  it('propagates a sync throw and an async rejection, releasing the lease both times', async () => {
    const id = randomUUID();
    expect(() => runAsUser(id, () => { throw new RangeError('sync'); })).toThrow(RangeError);
    expect(store.scopesInFlight).toBe(0);
    await expect(runAsUser(id, async () => {
      await randomDelay(2);
      throw new RangeError('async');
    })).rejects.toThrow('async');
    expect(store.scopesInFlight).toBe(0);
  });

  it('rejects a bad user id or fn before opening a scope', () => {
    expect(() => runAsUser('not-a-uuid', () => 1)).toThrow(InvalidUserIdError);
    expect(() => runAsUser(randomUUID(), 'fn' as never)).toThrow(TypeError);
    expect(store.size).toBe(0);
    expect(store.scopesInFlight).toBe(0);
  });

  it('uses the enclosing scope\'s store when none is given', () => {
    const other = new ContextStore();
    try {
      const id = randomUUID();
      runAsUser(randomUUID(), () => runAsUser(id, () => undefined), { store: other });
      expect(other.has(id)).toBe(true);
      expect(store.has(id)).toBe(false);
    } finally {
      void other.close();
    }
  });
});

describe('bindToCurrentUser', () => {
  it('each listener runs as the user that registered it, whoever emits', async () => {
    const emitter = new EventEmitter();
    const seen: { owner: string; user: string | undefined; provider: string | null; arg: number }[] = [];
    const users = Array.from({ length: 10 }, () => randomUUID());
    await Promise.all(users.map((id) => runAsUser(id, async () => {
      await configureUser({ provider: `p-${id}` });
      await randomDelay(5);
      emitter.on('tick', bindToCurrentUser((arg: number) => {
        seen.push({ owner: id, user: currentUserUuid(), provider: getUserProvider(), arg });
      }));
    })));

    emitter.emit('tick', 1); // outside any scope
    const stranger = randomUUID();
    runAsUser(stranger, () => emitter.emit('tick', 2)); // from another user's scope
    await Promise.all(users.map((id) => runAsUser(id, async () => {
      await randomDelay(5);
      emitter.emit('tick', 3); // from each user's own scope
    })));

    expect(seen).toHaveLength(users.length * (2 + users.length));
    for (const s of seen) {
      expect(s.user).toBe(s.owner);
      expect(s.provider).toBe(`p-${s.owner}`);
    }
    expect(store.has(stranger)).toBe(true);
    expect(store.peek(stranger)?.provider).toBeNull();
  });

  it('while the scope is open, runs in it (same snapshot); after it ended, on the current configuration', async () => {
    const id = randomUUID();
    let bound!: () => [string | undefined, string | null];
    let release!: () => void;
    const request = runAsUser(id, async () => {
      await setUserModel('m1');
      bound = bindToCurrentUser(() => [currentUserUuid(), getUserModel()]);
      await new Promise<void>((r) => (release = r));
    });
    await flush();
    await runAsUser(id, () => setUserModel('m2')); // another request of the same user
    expect(bound()).toEqual([id, 'm1']);
    release();
    await request;
    expect(store.scopesInFlight).toBe(0);
    expect(bound()).toEqual([id, 'm2']);
    expect(store.scopesInFlight).toBe(0);
  });

  it('keeps `this`, the arguments and the return value', () => {
    const id = randomUUID();
    const fn = runAsUser(id, () => bindToCurrentUser(function (this: { k: number }, a: number, b: number) {
      return [this.k, a + b, currentUserUuid()];
    }));
    expect(fn.call({ k: 7 }, 2, 3)).toEqual([7, 5, id]);
  });

  it('outside a scope throws in multi-user mode and returns fn unchanged in single-user mode', async () => {
    const fn = (): number => 1;
    expect(() => bindToCurrentUser(fn)).toThrow(UserContextMissingError);
    const single = new ContextStore({ mode: 'single-user' });
    setDefaultStore(single);
    try {
      expect(bindToCurrentUser(fn)).toBe(fn);
    } finally {
      setDefaultStore(store);
      await single.close();
    }
  });
});

describe('async work that outlives its scope', () => {
  it('sees its own writes', async () => {
    const id = randomUUID();
    let detached!: Promise<string | null>;
    await runAsUser(id, async () => {
      await setUserModel('m1');
      detached = (async () => {
        await randomDelay(20); // the request has ended by now
        await setUserModel('m2');
        return getUserModel();
      })();
    });
    expect(store.scopesInFlight).toBe(0);
    await expect(detached).resolves.toBe('m2');
    expect(store.peek(id)?.model).toBe('m2');
  });

  it('never gets a client that is already disposed', async () => {
    const llms = clientFactory();
    const own = new ContextStore({ resources: { llmInstance: { create: llms.create } } });
    try {
      const id = randomUUID();
      let detached!: Promise<FakeClient>;
      await runAsUser(id, async () => {
        await configureUser({ provider: 'Google', model: 'm1' });
        detached = (async () => {
          await randomDelay(20);
          return getUserLlmInstance() as FakeClient;
        })();
      }, { store: own });
      await runAsUser(id, () => setUserModel('m2'), { store: own }); // retires the ended request's configuration
      const llm = await detached;
      await flush();
      expect(llm.closed).toBe(0);
    } finally {
      await own.close();
    }
  });
});
