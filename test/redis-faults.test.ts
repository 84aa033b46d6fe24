/**
 * Redis faults under load: two instances of the example app share contexts
 * through a redis-server started by this test (its own port, nothing on
 * disk), while 50 users interleave configures and queries on both instances
 * with random delays. Meanwhile the test
 *
 *   1. kills Redis (SIGKILL) and starts it again on the same port, three
 *      times: every context is lost each time;
 *   2. stalls Redis (DEBUG SLEEP, longer than the store's commandTimeout)
 *      in the middle of configures, then kills the stores' connections
 *      (CLIENT KILL TYPE normal, then TYPE pubsub).
 *
 * A client-side ledger of every request (sent/received times, status, body)
 * is checked afterwards:
 *   - zero wrong-user answers (each user's model names the user), zero torn
 *     provider/model pairs, and the LLM client that answered is the one built
 *     for exactly that configuration;
 *   - a query that starts 100 ms after a configure was acknowledged never
 *     sees an older acknowledged configuration, nor the defaults unless
 *     Redis lost the data (a restart since that configure was sent);
 *   - every failure is `503 { error: "context_store_unavailable" }` with
 *     Retry-After (queries may also be `409 not_configured`: defaults), never
 *     a 500 and never a hang (each request has an 8 s deadline);
 *   - afterwards both instances agree and show the last acknowledged
 *     configure (or one that got a 503, whose outcome is unknown by design),
 *     or the defaults when the data was lost and nothing was acknowledged since;
 *   - service is back within 5 s after Redis returns (measured: Redis up →
 *     both instances ready and a configure on one visible on the other);
 *   - after close(), every LLM client created was disposed exactly once.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PROVIDERS, createApp, createSharedStore } from '../examples/app.js';
import { FakeLlmClient, createFakeLlm } from './support/fake-llm.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import type { UserConfig } from '../src/index.js';
import type { RedisContextStore } from '../src/redis.js';
import { OwnRedisServer, adminClient, requireRedisServerBinary, runPrefix, sleep } from './helpers/redis.js';

const available = requireRedisServerBinary('Redis fault tests');

const USERS = 50;
const MAX_OPS_PER_USER = 400;
const REQUEST_DEADLINE_MS = 8_000;
const COMMAND_TIMEOUT_MS = 800;
/** The README's consistency bound: a request starting this long after an ack sees it. */
const VISIBLE_AFTER_MS = 100;
/** "Back within seconds": the bound asserted on every recovery. */
const RECOVERY_BOUND_MS = 5_000;

interface Instance {
  name: 'A' | 'B';
  base: string;
  store: RedisContextStore;
  server: Server;
}

interface Reply {
  status: number;
  json: Record<string, unknown>;
  retryAfter: string | null;
}

interface Write {
  seq: number;
  provider: string;
  model: string;
  sent: number;
  received: number;
  status: number;
  instance: string;
}

interface Query {
  sent: number;
  received: number;
  status: number;
  json: Record<string, unknown>;
  instance: string;
}

interface User {
  index: number;
  uuid: string;
  token: string;
  writes: Write[];
  queries: Query[];
  nextSeq: number;
}

/** A fault: `start` just before Redis stops serving, `end` once it serves again. */
interface Fault {
  kind: string;
  start: number;
  end: number;
  /** Whether the data was lost (a restart of a server that keeps nothing on disk). */
  loses: boolean;
  recoveryMs: number;
}

interface Problems {
  wrongUser: string[];
  torn: string[];
  stale: string[];
  unexpected: string[];
}

const providerOf = (seq: number): string => PROVIDERS[seq % PROVIDERS.length]!;
/** The model names the user and the write, so a wrong-user or torn answer is visible. */
const modelOf = (uuid: string, seq: number): string => `m:${uuid}:${seq}`;

function parseModel(model: unknown): { uuid: string; seq: number } | undefined {
  const m = typeof model === 'string' ? /^m:([0-9a-f-]{36}):(\d+)$/.exec(model) : null;
  return m === null ? undefined : { uuid: m[1]!, seq: Number(m[2]) };
}

async function call(base: string, token: string, path: string, body?: unknown): Promise<Reply> {
  try {
    const res = await fetch(base + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
    });
    const text = await res.text();
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      json = { error: '(not JSON)', body: text.slice(0, 200) };
    }
    return { status: res.status, json, retryAfter: res.headers.get('retry-after') };
  } catch (error) {
    // -1: no answer within the deadline (a hang) or the connection failed.
    return { status: -1, json: { error: String(error) }, retryAfter: null };
  }
}

/** Two instances of the example app on one Redis, counting every LLM client created and disposed. */
async function startInstances(url: string, secret: string) {
  const keyPrefix = runPrefix('faults');
  const encryptionKey = randomBytes(32);
  const created: FakeLlmClient[] = [];
  const disposals = new Map<FakeLlmClient, number>();
  const instances: Instance[] = [];
  for (const name of ['A', 'B'] as const) {
    const store = createSharedStore({
      redis: url,
      keyPrefix,
      encryptionKey,
      commandTimeout: COMMAND_TIMEOUT_MS,
      resources: {
        llmInstance: {
          create: (config: UserConfig) => {
            const client = createFakeLlm(config);
            if (client !== null) created.push(client);
            return client;
          },
          dispose: (client: unknown) => {
            const c = client as FakeLlmClient;
            disposals.set(c, (disposals.get(c) ?? 0) + 1);
            return c.close();
          },
        },
      },
    });
    const { app } = createApp({ secret, store });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    instances.push({ name, store, server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  }
  for (const instance of instances) expect(await instance.store.whenReady(5_000)).toBe(true);
  return { instances: instances as [Instance, Instance], created, disposals };
}

function newUsers(secret: string): User[] {
  return Array.from({ length: USERS }, (_, index) => {
    const uuid = randomUUID();
    return { index, uuid, token: mintToken(secret, uuid), writes: [], queries: [], nextSeq: 1 };
  });
}

/** One user's load: configures and queries on random instances, one at a time, until `stop()`. */
async function runUser(user: User, instances: readonly Instance[], stop: () => boolean): Promise<void> {
  for (let op = 0; op < MAX_OPS_PER_USER && !stop(); op++) {
    await sleep(Math.random() * 25);
    const instance = instances[Math.floor(Math.random() * instances.length)]!;
    if (Math.random() < 0.35) {
      const seq = user.nextSeq++;
      const provider = providerOf(seq);
      const model = modelOf(user.uuid, seq);
      const sent = Date.now();
      const reply = await call(instance.base, user.token, '/configure', { provider, model });
      user.writes.push({ seq, provider, model, sent, received: Date.now(), status: reply.status, instance: instance.name });
      checkFailure(reply, `configure ${user.index}#${seq} on ${instance.name}`);
      const config = reply.json['config'] as Record<string, unknown> | undefined;
      if (reply.status === 200 && (reply.json['user'] !== user.uuid || config?.['provider'] !== provider || config['model'] !== model)) {
        failures.push(`configure ${user.index}#${seq} on ${instance.name} answered ${JSON.stringify(reply.json).slice(0, 300)}`);
      }
    } else {
      const sent = Date.now();
      const reply = await call(instance.base, user.token, '/query', { prompt: `question ${op}` });
      user.queries.push({ sent, received: Date.now(), status: reply.status, json: reply.json, instance: instance.name });
      checkFailure(reply, `query ${user.index} on ${instance.name}`);
    }
  }
}

/** Anything but 200 must be a documented JSON error: 503 context_store_unavailable (+ Retry-After) or 409 not_configured. */
const failures: string[] = [];
function checkFailure(reply: Reply, what: string): void {
  if (reply.status === 200) return;
  const ok503 = reply.status === 503 && reply.json['error'] === 'context_store_unavailable' && reply.retryAfter === '5' &&
    typeof reply.json['message'] === 'string';
  const ok409 = reply.status === 409 && reply.json['error'] === 'not_configured' && what.startsWith('query');
  if (!ok503 && !ok409) failures.push(`${what}: ${reply.status} ${JSON.stringify(reply.json).slice(0, 300)}`);
}

/**
 * Redis is serving again: how long until both instances are ready and a
 * configure on each is seen by a query on the other.
 */
async function measureRecovery(instances: readonly Instance[], secret: string, since: number): Promise<number> {
  const probe = randomUUID();
  const token = mintToken(secret, probe);
  let seq = 0;
  while (Date.now() - since < RECOVERY_BOUND_MS * 2) {
    const ready = await Promise.all(instances.map((i) => fetch(`${i.base}/ready`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.status === 200, () => false)));
    if (ready.every(Boolean)) {
      let ok = true;
      for (const [from, to] of [[instances[0]!, instances[1]!], [instances[1]!, instances[0]!]] as const) {
        seq++;
        const model = modelOf(probe, seq);
        const written = await call(from.base, token, '/configure', { provider: providerOf(seq), model });
        await sleep(5);
        const read = written.status === 200 ? await call(to.base, token, '/query', { prompt: 'probe' }) : undefined;
        if (read?.status !== 200 || read.json['model'] !== model) ok = false;
      }
      if (ok) return Date.now() - since;
    }
    await sleep(20);
  }
  return Number.POSITIVE_INFINITY;
}

/** Checks every query of the run against the user's ledger. */
function checkQueries(users: readonly User[], faults: readonly Fault[], problems: Problems): void {
  for (const user of users) {
    for (const q of user.queries) {
      // The last configure acknowledged at least VISIBLE_AFTER_MS before the query started.
      const acked = user.writes.filter((w) => w.status === 200 && w.received <= q.sent - VISIBLE_AFTER_MS).at(-1);
      const lostSince = (w: Write): boolean => faults.some((f) => f.loses && f.start >= w.sent);
      if (q.status === 200) {
        const parsed = parseModel(q.json['model']);
        if (q.json['user'] !== user.uuid || parsed === undefined || parsed.uuid !== user.uuid) {
          problems.wrongUser.push(`user ${user.index} on ${q.instance} got ${JSON.stringify(q.json)}`);
          continue;
        }
        const write = user.writes.find((w) => w.seq === parsed.seq);
        const answer = `[${String(q.json['provider'])}/${String(q.json['model'])}]`;
        if (write === undefined || write.sent > q.received || q.json['provider'] !== providerOf(parsed.seq) ||
          typeof q.json['answer'] !== 'string' || !q.json['answer'].startsWith(answer)) {
          problems.torn.push(`user ${user.index} on ${q.instance} got ${JSON.stringify(q.json)}`);
          continue;
        }
        // An older write than the acknowledged one, itself acknowledged: stale.
        // (One that got a 503 may have been applied late, after it: allowed.)
        if (acked !== undefined && write.seq < acked.seq && write.status === 200 && !lostSince(acked)) {
          problems.stale.push(`user ${user.index} on ${q.instance} at +${q.sent - acked.received} ms after ack of #${acked.seq} got #${write.seq}`);
        }
      } else if (q.status === 409) {
        // Defaults: fine before any acknowledged write or after Redis lost it.
        if (acked !== undefined && !lostSince(acked)) {
          problems.stale.push(`user ${user.index} on ${q.instance} got not_configured ${q.sent - acked.received} ms after ack of #${acked.seq}`);
        }
      }
    }
  }
}

/** The configurations each user may legitimately show once everything is quiet (null: the defaults). */
function finalCandidates(user: User, faults: readonly Fault[]): Set<number | null> {
  const lastLoss = faults.filter((f) => f.loses).at(-1);
  // Writes that may have reached the Redis that holds the data now.
  const maySurvive = (w: Write): boolean => lastLoss === undefined || w.received > lastLoss.start;
  const surelySurvives = (w: Write): boolean => lastLoss === undefined || w.sent >= lastLoss.end;
  const definite = user.writes.filter((w) => w.status === 200 && surelySurvives(w)).at(-1);
  const unknown = user.writes.filter((w) => w.status !== 200 && maySurvive(w)).map((w) => w.seq);
  if (definite !== undefined) return new Set([definite.seq, ...unknown]);
  return new Set([null, ...user.writes.filter(maySurvive).map((w) => w.seq), ...unknown]);
}

async function checkFinalState(users: readonly User[], instances: readonly Instance[], faults: readonly Fault[], problems: Problems) {
  let lostUsers = 0;
  for (const user of users) {
    const candidates = finalCandidates(user, faults);
    const seen: (number | null)[] = [];
    for (const instance of instances) {
      const reply = await call(instance.base, user.token, '/query', { prompt: 'final' });
      if (reply.status === 409 && reply.json['error'] === 'not_configured') {
        seen.push(null);
        continue;
      }
      const parsed = reply.status === 200 ? parseModel(reply.json['model']) : undefined;
      if (parsed === undefined || parsed.uuid !== user.uuid) {
        problems.wrongUser.push(`final: user ${user.index} on ${instance.name}: ${reply.status} ${JSON.stringify(reply.json)}`);
        seen.push(-1);
        continue;
      }
      if (reply.json['provider'] !== providerOf(parsed.seq)) problems.torn.push(`final: user ${user.index}: ${JSON.stringify(reply.json)}`);
      seen.push(parsed.seq);
    }
    if (seen[0] !== seen[1] || !candidates.has(seen[0]!)) {
      problems.stale.push(`final: user ${user.index} shows ${JSON.stringify(seen)}, expected one of ${JSON.stringify([...candidates])}`);
    }
    if (seen[0] === null && user.writes.some((w) => w.status === 200)) lostUsers++;
  }
  return { lostUsers };
}

/** Queries answered with the defaults although the user had a configure acknowledged before: what a user sees after a loss. */
function defaultsAfterAck(users: readonly User[]): number {
  let n = 0;
  for (const user of users) {
    for (const q of user.queries) {
      if (q.status === 409 && user.writes.some((w) => w.status === 200 && w.received < q.sent)) n++;
    }
  }
  return n;
}

function summarise(users: readonly User[]) {
  const all = users.flatMap((u) => [...u.writes.map((w) => w.status), ...u.queries.map((q) => q.status)]);
  const count = (status: number) => all.filter((s) => s === status).length;
  return {
    requests: all.length,
    configures: users.reduce((n, u) => n + u.writes.length, 0),
    ok: count(200),
    unavailable503: count(503),
    notConfigured409: count(409),
  };
}

const pct = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
};

describe.skipIf(!available)('Redis faults under load (two instances, 50 users)', () => {
  let redis: OwnRedisServer | undefined;
  let instances: Instance[] = [];

  afterEach(async () => {
    for (const i of instances) i.server.close();
    await Promise.all(instances.map((i) => i.store.close()));
    instances = [];
    await redis?.destroy();
    redis = undefined;
    failures.length = 0;
  });

  /**
   * Runs the users until `faults()` settles (plus a tail of normal traffic),
   * then checks the ledger, the final state and the LLM clients.
   */
  async function underLoad(label: string, server: OwnRedisServer, faults: (env: { instances: Instance[]; secret: string }) => Promise<Fault[]>) {
    const secret = generateSecret();
    const started = await startInstances(server.url, secret);
    instances = started.instances;
    const users = newUsers(secret);
    let stopped = false;
    const load = Promise.all(users.map((u) => runUser(u, instances, () => stopped)));
    const done = await faults({ instances, secret }).finally(async () => {
      await sleep(600); // normal traffic after the last fault
      stopped = true;
    });
    await load;

    const problems: Problems = { wrongUser: [], torn: [], stale: [], unexpected: failures };
    checkQueries(users, done, problems);
    for (const i of instances) expect(await i.store.whenReady(5_000)).toBe(true);
    await sleep(VISIBLE_AFTER_MS);
    const { lostUsers } = await checkFinalState(users, instances, done, problems);
    const sawDefaults = defaultsAfterAck(users);

    const stats = summarise(users);
    const recoveries = done.map((f) => f.recoveryMs);
    console.log(`[redis-faults] ${label}: ${JSON.stringify({ ...stats, lostUsers, sawDefaults, faults: done.map((f) => `${f.kind} ${f.recoveryMs} ms`) })}`);

    expect(problems.wrongUser, 'answers naming another user').toEqual([]);
    expect(problems.torn, 'torn configurations / client not built for the configuration').toEqual([]);
    expect(problems.unexpected, 'failures other than 503 context_store_unavailable / 409 not_configured').toEqual([]);
    expect(problems.stale, 'acknowledged configures not visible').toEqual([]);
    expect(recoveries.every((ms) => ms <= RECOVERY_BOUND_MS), `recovery times ${recoveries.join(', ')} ms`).toBe(true);
    // The faults happened under load: requests failed with 503 and succeeded around them.
    expect(stats.unavailable503).toBeGreaterThan(0);
    expect(stats.ok).toBeGreaterThan(stats.unavailable503);

    // Every LLM client built was disposed exactly once, once both stores are closed.
    const { created, disposals } = started;
    await Promise.all(instances.map((i) => i.store.close()));
    expect(created.length).toBeGreaterThan(USERS);
    expect(created.filter((c) => disposals.get(c) !== 1).length, 'clients not disposed exactly once').toBe(0);
    expect(disposals.size).toBe(created.length);
    return { stats, recoveries, lostUsers, sawDefaults };
  }

  it('an instance told by an invalidation that its copy is outdated answers 503, not the old configuration, while Redis is down', async () => {
    redis = await OwnRedisServer.start({ persist: false });
    const secret = generateSecret();
    const started = await startInstances(redis.url, secret);
    instances = started.instances;
    const [a, b] = started.instances;
    const [told, untouched] = [randomUUID(), randomUUID()];
    const [tTold, tUntouched] = [mintToken(secret, told), mintToken(secret, untouched)];
    const configure = (base: string, token: string, uuid: string, seq: number) =>
      call(base, token, '/configure', { provider: providerOf(seq), model: modelOf(uuid, seq) });
    expect((await configure(a.base, tTold, told, 1)).status).toBe(200);
    expect((await configure(a.base, tUntouched, untouched, 1)).status).toBe(200);
    // Both users are now in b's near-cache, on their first configuration.
    await sleep(VISIBLE_AFTER_MS);
    expect((await call(b.base, tTold, '/query', { prompt: 'hi' })).json['model']).toBe(modelOf(told, 1));
    expect((await call(b.base, tUntouched, '/query', { prompt: 'hi' })).json['model']).toBe(modelOf(untouched, 1));

    const before = b.store.stats.invalidations;
    expect((await configure(a.base, tTold, told, 2)).status).toBe(200);
    for (let i = 0; i < 200 && b.store.stats.invalidations === before; i++) await sleep(10);
    expect(b.store.stats.invalidations).toBeGreaterThan(before);
    await redis.kill();

    // b knows its copy of `told` is outdated: 503, never the acknowledged-over configuration.
    expect(await call(b.base, tTold, '/query', { prompt: 'hi' })).toMatchObject({
      status: 503, retryAfter: '5', json: { error: 'context_store_unavailable' },
    });
    // A context nobody changed is still served from the near-cache (documented).
    expect(await call(b.base, tUntouched, '/query', { prompt: 'hi' })).toMatchObject({ status: 200, json: { model: modelOf(untouched, 1) } });
    // The writer holds what it wrote: served from its near-cache.
    expect(await call(a.base, tTold, '/query', { prompt: 'hi' })).toMatchObject({ status: 200, json: { model: modelOf(told, 2) } });

    // Redis returns empty: every instance shows the defaults, then the next configure.
    await redis.restart();
    for (const i of started.instances) expect(await i.store.whenReady(5_000)).toBe(true);
    for (const i of started.instances) {
      expect(await call(i.base, tTold, '/query', { prompt: 'hi' })).toMatchObject({ status: 409, json: { error: 'not_configured' } });
    }
    expect((await configure(b.base, tTold, told, 3)).status).toBe(200);
    await sleep(VISIBLE_AFTER_MS);
    expect(await call(a.base, tTold, '/query', { prompt: 'hi' })).toMatchObject({ status: 200, json: { model: modelOf(told, 3) } });
  });

  it('Redis restarted three times (contexts lost): no wrong user, no torn pair, acknowledged = visible or lost with Redis, back within seconds', async () => {
    redis = await OwnRedisServer.start({ persist: false });
    const server = redis;
    const { sawDefaults } = await underLoad('restart', server, async ({ instances: both, secret }) => {
      const faults: Fault[] = [];
      for (let round = 0; round < 3; round++) {
        await sleep(700 + Math.random() * 500);
        const start = Date.now();
        await server.kill();
        await sleep(200 + Math.random() * 400); // Redis is down
        await server.restart(); // resolves once it answers PING
        const end = Date.now();
        faults.push({ kind: 'restart', start, end, loses: true, recoveryMs: await measureRecovery(both, secret, end) });
      }
      return faults;
    });
    // The restarts really lost contexts: users who had configured were back on
    // the defaults (409 not_configured) until their next configure.
    expect(sawDefaults).toBeGreaterThan(0);
  }, 40_000);

  it('Redis stalled (DEBUG SLEEP) mid-configure and connections killed (CLIENT KILL): same guarantees, nothing lost', async () => {
    redis = await OwnRedisServer.start({ persist: false, args: ['--enable-debug-command', 'local'] });
    const server = redis;
    const admin = adminClient(server.url);
    try {
      const { lostUsers, sawDefaults } = await underLoad('stall+kill', server, async ({ instances: both, secret }) => {
        const faults: Fault[] = [];
        const steps: [string, () => Promise<unknown>][] = [
          ['stall 1.5 s', () => admin.call('DEBUG', 'SLEEP', '1.5')],
          ['client kill normal', () => admin.call('CLIENT', 'KILL', 'TYPE', 'normal')],
          ['client kill pubsub', () => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')],
          ['stall 1 s', () => admin.call('DEBUG', 'SLEEP', '1')],
        ];
        for (const [kind, fault] of steps) {
          await sleep(600 + Math.random() * 400);
          const start = Date.now();
          await fault(); // DEBUG SLEEP answers when Redis wakes up
          const end = Date.now();
          faults.push({ kind, start, end, loses: false, recoveryMs: await measureRecovery(both, secret, end) });
        }
        return faults;
      });
      expect(lostUsers).toBe(0);
      expect(sawDefaults).toBe(0);
    } finally {
      admin.disconnect();
    }
  }, 40_000);
});
