/**
 * Property-based interleavings. fast-check generates random programs of many
 * users' operations (requests with random awaits, configure, set a client,
 * nested scopes of the same or another user, evict, TTL expiry on a fake
 * clock, LRU eviction, cleanup, close), and its scheduler runs them in random
 * interleavings. A small reference model says what every read must return.
 *
 * Checked after every step of every request:
 *  - zero cross-user reads: the scope's user and the configuration read are
 *    that user's (every written value names its writer);
 *  - zero torn configurations: model, awsRegion and mcpServerName always come
 *    from the same write;
 *  - snapshot: a request reads the configuration current when it started,
 *    plus its own writes; out-of-scope reads match the model (evictions,
 *    TTL, LRU included);
 *  - the LLM client returned was built for exactly the configuration read;
 *  - every resource is disposed at most once, never while a request holds it,
 *    and (after close) exactly once.
 *
 * "Override" (a per-query profile override, built elsewhere as
 * withProfileOverride) is modelled as a nested runAsUser of the same or of
 * another user inside a request: the nested scope reads the user's current
 * configuration, and the outer request's snapshot is untouched after it.
 *
 *   FC_NUM_RUNS  runs per property (default 300; `npm run test:deep` sets 5000)
 *   FC_SEED      replay a failing seed
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ContextStore,
  StoreClosedError,
  configureUser,
  currentUserUuid,
  getUserField,
  getUserLlmInstance,
  runAsUser,
  setDefaultStore,
  setUserLlmInstance,
  ConfigurationConflictError,
  type UserConfig,
} from '../src/index.js';

const NUM_RUNS = Number(process.env['FC_NUM_RUNS'] ?? 300);
const SEED = process.env['FC_SEED'] === undefined ? undefined : Number(process.env['FC_SEED']);
const USERS = 4;
const MAX = 3; // fewer slots than users: LRU evictions happen
const TTL = 1000;

type Step =
  | { k: 'read' }
  | { k: 'await' }
  | { k: 'configure' }
  | { k: 'llm' }
  | { k: 'setLlm' }
  | { k: 'nested'; user: number };

type Op =
  | { k: 'request'; user: number; steps: Step[] }
  | { k: 'configureOutside'; user: number }
  | { k: 'readOutside'; user: number }
  | { k: 'evict'; user: number }
  | { k: 'advance'; ms: number }
  | { k: 'cleanup'; maxAge: number }
  | { k: 'close' };

const user = fc.integer({ min: 0, max: USERS - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ k: 'read' } as const) },
  { weight: 4, arbitrary: fc.constant({ k: 'await' } as const) },
  { weight: 2, arbitrary: fc.constant({ k: 'configure' } as const) },
  { weight: 3, arbitrary: fc.constant({ k: 'llm' } as const) },
  { weight: 1, arbitrary: fc.constant({ k: 'setLlm' } as const) },
  { weight: 1, arbitrary: user.map((u) => ({ k: 'nested', user: u }) as const) },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('request' as const), user, steps: fc.array(step, { minLength: 1, maxLength: 10 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('configureOutside' as const), user }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('readOutside' as const), user }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('evict' as const), user }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1500 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('cleanup' as const), maxAge: fc.integer({ min: 0, max: 1500 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'close' } as const) },
);
/** Programs with at most one close (later ones dropped). */
const program = fc.array(op, { minLength: 1, maxLength: 14 }).map((ops) => {
  const first = ops.findIndex((o) => o.k === 'close');
  return first < 0 ? ops : ops.filter((o, i) => o.k !== 'close' || i === first);
});

/** A client that records its disposals and who holds it. */
class Tracked {
  disposals = 0;
  holders = 0;
  constructor(readonly user: string, readonly config: string | null, readonly violations: string[]) {}
  async close(): Promise<void> {
    this.disposals++;
    if (this.disposals > 1) this.violations.push(`client ${this.user}/${this.config} disposed ${this.disposals} times`);
    if (this.holders > 0) this.violations.push(`client ${this.user}/${this.config} disposed while ${this.holders} request(s) held it`);
  }
}

interface ModelEntry {
  config: string | null;
  lastTouch: number;
}

/** The reference model: what each user's current configuration is. */
class Model {
  /** Insertion order is LRU order (oldest first), like lru-cache. */
  readonly entries = new Map<number, ModelEntry>();
  clock = 0;
  closed = false;
  seq = 0;

  /** Mirrors ContextStore#touch; returns undefined where the store must throw StoreClosedError. */
  touch(u: number): ModelEntry | undefined {
    let entry = this.entries.get(u);
    if (entry !== undefined) this.entries.delete(u);
    else {
      if (this.closed) return undefined;
      entry = { config: null, lastTouch: 0 };
    }
    entry.lastTouch = this.clock;
    this.entries.set(u, entry);
    if (this.entries.size > MAX) this.entries.delete(this.entries.keys().next().value!);
    return entry;
  }

  purgeStale(): void {
    for (const [u, e] of [...this.entries]) if (this.clock - e.lastTouch > TTL) this.entries.delete(u);
  }
}

/** The configuration triple as read; throws on a torn one. */
function readConfig(uuid?: string): string | null {
  const model = getUserField('model', uuid);
  const region = getUserField('awsRegion', uuid);
  const server = getUserField('mcpServerName', uuid);
  if (model === null && region === null && server === null) return null;
  const id = model?.slice(2) ?? 'null';
  expect({ model, region, server }, 'torn configuration').toEqual({ model: `m:${id}`, region: `r:${id}`, server: `s:${id}` });
  return id;
}

const patchFor = (id: string) => ({ model: `m:${id}`, awsRegion: `r:${id}`, mcpServerName: `s:${id}` });
/** Which user wrote a configuration id (`<user>.<seq>`). */
const writer = (id: string | null) => (id === null ? null : Number(id.split('.')[0]));

afterEach(() => {
  vi.useRealTimers();
});

async function runProgram(ops: Op[], s: fc.Scheduler): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'], now: 1_000_000 });
  const violations: string[] = [];
  const uuids = Array.from({ length: USERS }, () => randomUUID());
  const clients: Tracked[] = [];
  const model = new Model();
  const store = new ContextStore({
    max: MAX,
    ttl: TTL,
    sweepInterval: 0,
    resources: {
      llmInstance: {
        create: (cfg: UserConfig, userUuid: string) => {
          const c = new Tracked(userUuid, cfg.model?.slice(2) ?? null, violations);
          clients.push(c);
          return c;
        },
      },
    },
  });
  // Helpers called with an explicit user id outside any scope use the default store.
  setDefaultStore(store);
  let closing: Promise<void> | undefined;
  const tick = (label: string) => s.schedule(Promise.resolve(), label);

  /** Asserts the scope is `u`'s and reads what `expected` says. */
  const checkRead = (u: number, expected: string | null): void => {
    expect(currentUserUuid(), 'cross-user scope').toBe(uuids[u]);
    const got = readConfig();
    expect(writer(got) === null || writer(got) === u, `cross-user read: user ${u} read ${got}`).toBe(true);
    expect(got, 'snapshot').toBe(expected);
  };

  const checkLlm = (u: number, expected: string | null, held: Set<Tracked>): void => {
    const llm = getUserLlmInstance() as unknown as Tracked | null;
    expect(llm).toBeInstanceOf(Tracked);
    expect(llm!.user, 'client of another user').toBe(uuids[u]);
    expect(llm!.config, 'client built for another configuration').toBe(expected);
    expect(llm!.disposals, 'client handed out after dispose').toBe(0);
    if (!held.has(llm!)) {
      held.add(llm!);
      llm!.holders++;
    }
  };

  /** Ends the holds; `check`: the clients must still be alive (false when the request gives them up by its own write). */
  const release = (held: Set<Tracked>, check = true): void => {
    for (const c of held) {
      if (check) expect(c.disposals, 'client disposed while a request held it').toBe(0);
      c.holders--;
    }
    held.clear();
  };

  async function request(u: number, steps: Step[]): Promise<void> {
    await tick(`start request of ${u}`);
    if (model.closed) {
      expect(() => runAsUser(uuids[u]!, () => 0, { store })).toThrow(StoreClosedError);
      return;
    }
    let snapshot = model.touch(u)!.config;
    const held = new Set<Tracked>();
    await runAsUser(uuids[u]!, async () => {
      for (const st of steps) {
        switch (st.k) {
          case 'read':
            checkRead(u, snapshot);
            break;
          case 'await':
            await tick(`await in request of ${u}`);
            checkRead(u, snapshot);
            break;
          case 'configure': {
            const id = `${u}.${++model.seq}`;
            const entry = model.touch(u);
            if (entry === undefined) {
              await expect(configureUser(patchFor(id))).rejects.toThrow(StoreClosedError);
              break;
            }
            // Its own write moves the request to the new configuration: it gives up the old clients.
            release(held, false);
            await configureUser(patchFor(id));
            entry.config = id;
            snapshot = id;
            break;
          }
          case 'llm':
            checkLlm(u, snapshot, held);
            break;
          case 'setLlm': {
            const entry = model.touch(u);
            if (entry === undefined) {
              await expect(setUserLlmInstance(new Tracked(uuids[u]!, snapshot, violations) as never)).rejects.toThrow(StoreClosedError);
              break;
            }
            // The client is built for the request's own snapshot. If another request has
            // reconfigured the user since, attaching it would pair it with a configuration it
            // was not built for: the write is refused and nothing changes. Otherwise it is
            // attached and the request moves onto the configuration it wrote.
            const client = new Tracked(uuids[u]!, snapshot, violations);
            if (entry.config !== snapshot) {
              await expect(setUserLlmInstance(client as never)).rejects.toThrow(ConfigurationConflictError);
              checkRead(u, snapshot);
              break;
            }
            release(held, false);
            await setUserLlmInstance(client as never);
            clients.push(client);
            expect(getUserLlmInstance()).toBe(client);
            checkLlm(u, snapshot, held);
            break;
          }
          case 'nested': {
            const v = st.user;
            if (model.closed) {
              expect(() => runAsUser(uuids[v]!, () => 0)).toThrow(StoreClosedError);
              break;
            }
            const inner = model.touch(v)!.config;
            const innerHeld = new Set<Tracked>();
            await runAsUser(uuids[v]!, async () => {
              checkRead(v, inner);
              checkLlm(v, inner, innerHeld);
              await tick(`nested ${v} in request of ${u}`);
              checkRead(v, inner);
              checkLlm(v, inner, innerHeld);
              release(innerHeld);
            });
            checkRead(u, snapshot);
            break;
          }
        }
        for (const c of held) expect(c.disposals, 'client disposed under a running request').toBe(0);
      }
      checkRead(u, snapshot);
      release(held);
    }, { store });
  }

  async function run(o: Op): Promise<void> {
    if (o.k === 'request') return request(o.user, o.steps);
    await tick(o.k);
    switch (o.k) {
      case 'configureOutside': {
        if (model.closed) return;
        const id = `${o.user}.${++model.seq}`;
        await configureUser(patchFor(id), uuids[o.user]);
        model.touch(o.user)!.config = id;
        return;
      }
      case 'readOutside': {
        if (model.closed) return;
        const expected = model.touch(o.user)!.config;
        expect(readConfig(uuids[o.user]), `out-of-scope read of user ${o.user}`).toBe(expected);
        return;
      }
      case 'evict':
        store.evict(uuids[o.user]!);
        model.entries.delete(o.user);
        return;
      case 'advance':
        vi.advanceTimersByTime(o.ms);
        model.clock += o.ms;
        store.purgeStale();
        model.purgeStale();
        return;
      case 'cleanup': {
        // Only users with no request in flight may go; the model cannot see
        // in-flight counts per entry, so it checks the survivors instead.
        const before = new Map(model.entries);
        store.cleanupInactive(o.maxAge);
        model.purgeStale();
        for (const [u, e] of before) {
          if (!store.has(uuids[u]!)) model.entries.delete(u);
          else expect(model.clock - e.lastTouch > o.maxAge && store.scopesInFlight === 0, `cleanup kept idle user ${u}`).toBe(false);
        }
        return;
      }
      case 'close':
        model.closed = true;
        closing = store.close({ timeout: 1e9 });
        return;
    }
  }

  try {
    const tasks = ops.map(run);
    await s.waitFor(Promise.all(tasks));
    await Promise.all(tasks);
    expect(store.scopesInFlight).toBe(0);
    // Every client that went out of use is disposed once no request holds it.
    const live = new Set<Tracked>();
    for (const u of model.entries.keys()) {
      const peek = store.peek(uuids[u]!);
      if (peek?.llmInstance != null) live.add(peek.llmInstance as unknown as Tracked);
    }
    await store.close({ timeout: 1e9 });
    if (closing !== undefined) await closing;
    expect(violations).toEqual([]);
    for (const c of clients) expect(c.disposals, `client ${c.user}/${c.config} disposals`).toBe(1);
    expect(store.size).toBe(0);
  } finally {
    vi.useRealTimers();
  }
}

describe('random interleavings of many users', () => {
  it('never shows a user another user\'s or a torn configuration, and disposes every client exactly once, never while leased', async () => {
    await fc.assert(
      fc.asyncProperty(program, fc.scheduler(), (ops, s) => runProgram(ops, s)),
      { numRuns: NUM_RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
  });

  it('keeps requests of one user on their own snapshots while that user reconfigures concurrently', async () => {
    const oneUser = fc.array(
      fc.record({ k: fc.constant('request' as const), user: fc.constant(0), steps: fc.array(step.filter((x) => x.k !== 'nested'), { minLength: 2, maxLength: 12 }) }),
      { minLength: 2, maxLength: 8 },
    );
    await fc.assert(
      fc.asyncProperty(oneUser, fc.scheduler(), (ops, s) => runProgram(ops, s)),
      { numRuns: Math.ceil(NUM_RUNS / 2), ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
  });
});
