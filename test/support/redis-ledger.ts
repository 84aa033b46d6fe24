/**
 * A client-side ledger for Redis fault tests: two instances of the example
 * app share contexts through one Redis deployment (a server, or a Cluster)
 * while users interleave configures and queries on both with random delays.
 * Every request is recorded (sent/received times, status, body); afterwards
 * the ledger is checked against what the instances served:
 *
 *   - wrong-user answers and torn provider/model pairs (the model names the
 *     user and the write; the LLM client must be the one built for it);
 *   - stale answers: a query that starts 100 ms after a configure was
 *     acknowledged shows an older configuration (or the defaults) although
 *     Redis did not lose the data;
 *   - late-applied writes: a configure answered with an error (503) shows up
 *     after a later configure of the same user was acknowledged, i.e. Redis
 *     applied it after its 503 (what fencing forbids);
 *   - every failure is 503 context_store_unavailable with Retry-After (or a
 *     409 not_configured query), never a 500 nor a hang.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cluster, Redis } from 'ioredis';
import { PROVIDERS, createApp, createSharedStore } from '../../examples/app.js';
import { FakeLlmClient, createFakeLlm } from './fake-llm.js';
import { mintToken } from '../../examples/tokens.js';
import type { UserConfig } from '../../src/index.js';
import type { RedisConsistency, RedisContextStore, RedisContextStoreOptions } from '../../src/redis.js';
import { expect } from 'vitest';
import { runPrefix, sleep } from '../helpers/redis.js';

export const REQUEST_DEADLINE_MS = 8_000;
/** The consistency bound: a request starting this long after an ack sees it. */
export const VISIBLE_AFTER_MS = 100;
/** "Back within seconds": the bound asserted on every recovery. */
export const RECOVERY_BOUND_MS = 5_000;

export interface Instance {
  name: 'A' | 'B';
  base: string;
  store: RedisContextStore;
  server: Server;
}

export interface Reply {
  status: number;
  json: Record<string, unknown>;
  retryAfter: string | null;
}

export interface Write {
  seq: number;
  provider: string;
  model: string;
  sent: number;
  received: number;
  status: number;
  instance: string;
}

export interface Query {
  sent: number;
  received: number;
  status: number;
  json: Record<string, unknown>;
  instance: string;
}

export interface User {
  index: number;
  uuid: string;
  token: string;
  writes: Write[];
  queries: Query[];
  nextSeq: number;
}

/** A fault: `start` just before Redis stops serving, `end` once it serves again. */
export interface Fault {
  kind: string;
  start: number;
  end: number;
  /** Whether the data was lost (a restart of a server that keeps nothing on disk). */
  loses: boolean;
  /** Only part of the data was lost (one Cluster master): a user's context may have survived. */
  partial?: boolean;
  recoveryMs: number;
}

export interface Problems {
  wrongUser: string[];
  torn: string[];
  /** Stale answers outside any fault window (never allowed). */
  stale: string[];
  /** Stale answers during a fault window (allowed with consistency 'available' only). */
  staleInFault: string[];
  /** How long after the acknowledgement each stale answer during a fault was given (ms). */
  staleLagsMs: number[];
  /** Writes answered 503 that were applied after a later write was acknowledged. */
  lateApplied: string[];
  /** Failures other than 503 context_store_unavailable / 409 not_configured. */
  unexpected: string[];
}

export const providerOf = (seq: number): string => PROVIDERS[seq % PROVIDERS.length]!;
/** The model names the user and the write, so a wrong-user or torn answer is visible. */
export const modelOf = (uuid: string, seq: number): string => `m:${uuid}:${seq}`;

export function parseModel(model: unknown): { uuid: string; seq: number } | undefined {
  const m = typeof model === 'string' ? /^m:([0-9a-f-]{36}):(\d+)$/.exec(model) : null;
  return m === null ? undefined : { uuid: m[1]!, seq: Number(m[2]) };
}

export async function call(base: string, token: string, path: string, body?: unknown, method?: string): Promise<Reply> {
  try {
    const res = await fetch(base + path, {
      method: method ?? (body === undefined ? 'GET' : 'POST'),
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

export interface Started {
  instances: [Instance, Instance];
  created: FakeLlmClient[];
  disposals: Map<FakeLlmClient, number>;
}

/** Two instances of the example app on one Redis deployment, counting every LLM client created and disposed. */
export async function startInstances(
  redis: () => string | Cluster | Redis,
  secret: string,
  options: Partial<RedisContextStoreOptions> & { consistency: RedisConsistency },
): Promise<Started> {
  const keyPrefix = options.keyPrefix ?? runPrefix('faults');
  const encryptionKey = options.encryptionKey ?? randomBytes(32);
  const created: FakeLlmClient[] = [];
  const disposals = new Map<FakeLlmClient, number>();
  const instances: Instance[] = [];
  for (const name of ['A', 'B'] as const) {
    const store = createSharedStore({
      redis: redis(),
      keyPrefix,
      encryptionKey,
      ...options,
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
  for (const instance of instances) {
    if (!(await instance.store.whenReady(10_000))) throw new Error(`instance ${instance.name} not ready: ${JSON.stringify(instance.store.readiness())}`);
  }
  return { instances: instances as [Instance, Instance], created, disposals };
}

export function newUsers(secret: string, count: number): User[] {
  return Array.from({ length: count }, (_, index) => {
    const uuid = randomUUID();
    return { index, uuid, token: mintToken(secret, uuid), writes: [], queries: [], nextSeq: 1 };
  });
}

/** One configure, recorded in the user's ledger. */
export async function configure(user: User, instance: Instance, failures: string[]): Promise<Write> {
  const seq = user.nextSeq++;
  const provider = providerOf(seq);
  const model = modelOf(user.uuid, seq);
  const sent = Date.now();
  const reply = await call(instance.base, user.token, '/configure', { provider, model });
  const write = { seq, provider, model, sent, received: Date.now(), status: reply.status, instance: instance.name };
  user.writes.push(write);
  checkFailure(reply, `configure ${user.index}#${seq} on ${instance.name}`, failures);
  const config = reply.json['config'] as Record<string, unknown> | undefined;
  if (reply.status === 200 && (reply.json['user'] !== user.uuid || config?.['provider'] !== provider || config['model'] !== model)) {
    failures.push(`configure ${user.index}#${seq} on ${instance.name} answered ${JSON.stringify(reply.json).slice(0, 300)}`);
  }
  return write;
}

/** One query, recorded in the user's ledger. */
export async function query(user: User, instance: Instance, failures: string[]): Promise<Query> {
  const sent = Date.now();
  const reply = await call(instance.base, user.token, '/query', { prompt: 'question' });
  const q = { sent, received: Date.now(), status: reply.status, json: reply.json, instance: instance.name };
  user.queries.push(q);
  checkFailure(reply, `query ${user.index} on ${instance.name}`, failures);
  return q;
}

/** One user's load: configures and queries on random instances, one at a time, until `stop()`. */
export async function runUser(user: User, instances: readonly Instance[], stop: () => boolean, failures: string[]): Promise<void> {
  for (let op = 0; op < 400 && !stop(); op++) {
    await sleep(Math.random() * 25);
    const instance = instances[Math.floor(Math.random() * instances.length)]!;
    if (Math.random() < 0.35) await configure(user, instance, failures);
    else await query(user, instance, failures);
  }
}

/** Anything but 200 must be a documented JSON error: 503 context_store_unavailable (+ Retry-After) or 409 not_configured. */
export function checkFailure(reply: Reply, what: string, failures: string[]): void {
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
export async function measureRecovery(instances: readonly Instance[], secret: string, since: number): Promise<number> {
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

const failed = (w: Write): boolean => w.status !== 200;

/** Checks every query of the run against the user's ledger. */
export function checkQueries(users: readonly User[], faults: readonly Fault[], problems: Problems): void {
  const inFault = (t: number): boolean => faults.some((f) => t >= f.start && t <= f.end + f.recoveryMs);
  for (const user of users) {
    for (const q of user.queries) {
      // The last configure acknowledged at least VISIBLE_AFTER_MS before the query started.
      const acked = user.writes.filter((w) => w.status === 200 && w.received <= q.sent - VISIBLE_AFTER_MS).at(-1);
      const lostSince = (w: Write): boolean => faults.some((f) => f.loses && f.start >= w.sent);
      const stale = (what: string): void => {
        (inFault(q.sent) ? problems.staleInFault : problems.stale).push(what);
        if (inFault(q.sent) && acked !== undefined) problems.staleLagsMs.push(q.sent - acked.received);
      };
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
        if (acked === undefined || write.seq >= acked.seq || lostSince(acked)) continue;
        const what = `user ${user.index} on ${q.instance} at +${q.sent - acked.received} ms after ack of #${acked.seq} got #${write.seq}`;
        // A write answered 503 applied after a later acknowledged one: applied after its 503.
        if (failed(write)) problems.lateApplied.push(`${what} (answered ${write.status})`);
        else stale(what);
      } else if (q.status === 409) {
        // Defaults: fine before any acknowledged write or after Redis lost it.
        if (acked !== undefined && !lostSince(acked)) {
          stale(`user ${user.index} on ${q.instance} got not_configured ${q.sent - acked.received} ms after ack of #${acked.seq}`);
        }
      }
    }
  }
}

/**
 * Once everything is quiet, both instances must show the same configuration:
 * the last acknowledged configure (unless Redis lost it), or a later one
 * answered with an error (its outcome is unknown: applied before its 503, or
 * never). One answered with an error before the last acknowledged one
 * showing is a late-applied write.
 */
export async function checkFinalState(users: readonly User[], instances: readonly Instance[], faults: readonly Fault[], problems: Problems) {
  let lostUsers = 0;
  const lastLoss = faults.filter((f) => f.loses).at(-1);
  // Writes that may have reached the Redis that holds the data now.
  const maySurvive = (w: Write): boolean => lastLoss === undefined || w.received > lastLoss.start;
  const surelySurvives = (w: Write): boolean => lastLoss === undefined || w.sent >= lastLoss.end;
  for (const user of users) {
    const definite = user.writes.filter((w) => w.status === 200 && surelySurvives(w)).at(-1);
    const after = user.writes.filter((w) => maySurvive(w) && (definite === undefined || w.seq > definite.seq) && (failed(w) || definite === undefined));
    const candidates = new Set<number | null>([...(definite ? [definite.seq] : [null]), ...after.map((w) => w.seq)]);
    if (lastLoss?.partial === true && definite === undefined) {
      // Only part of the data was lost: a Cluster master restarted empty (the user's key may have been on
      // another one), or a failover to a replica that lagged (asynchronous replication: the user may be back
      // on any earlier configuration that reached Redis).
      for (const w of user.writes) if (w.sent < lastLoss.start) candidates.add(w.seq);
    }
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
      const late = user.writes.find((w) => w.seq === seen[0] && failed(w));
      const what = `final: user ${user.index} shows ${JSON.stringify(seen)}, expected one of ${JSON.stringify([...candidates])}`;
      (late !== undefined && seen[0] === seen[1] ? problems.lateApplied : problems.stale).push(what);
    }
    if (seen[0] === null && user.writes.some((w) => w.status === 200)) lostUsers++;
  }
  return { lostUsers };
}

/** Queries answered with the defaults although the user had a configure acknowledged before: what a user sees after a loss. */
export function defaultsAfterAck(users: readonly User[]): number {
  let n = 0;
  for (const user of users) {
    for (const q of user.queries) {
      if (q.status === 409 && user.writes.some((w) => w.status === 200 && w.received < q.sent)) n++;
    }
  }
  return n;
}

export function summarise(users: readonly User[]) {
  const all = users.flatMap((u) => [...u.writes.map((w) => w.status), ...u.queries.map((q) => q.status)]);
  const count = (status: number) => all.filter((s) => s === status).length;
  return {
    requests: all.length,
    configures: users.reduce((n, u) => n + u.writes.length, 0),
    ok: count(200),
    unavailable503: count(503),
    configures503: users.reduce((n, u) => n + u.writes.filter((w) => w.status === 503).length, 0),
    notConfigured409: count(409),
    hangs: count(-1),
  };
}

export function emptyProblems(failures: string[]): Problems {
  return { wrongUser: [], torn: [], stale: [], staleInFault: [], staleLagsMs: [], lateApplied: [], unexpected: failures };
}

/** What {@link verifyRun} checks a finished load run against. */
export interface RunToVerify {
  /** Log tag, e.g. `redis-cluster`. */
  tag: string;
  scenario: string;
  mode: 'available' | 'strict';
  users: readonly User[];
  instances: readonly Instance[];
  faults: readonly Fault[];
  failures: string[];
  /**
   * strict mode: stale answers during a fault are allowed up to this lag
   * (a detection bound); without it, none at all.
   */
  strictStaleBoundMs?: number;
}

/**
 * Checks a finished run: the ledger's queries, the final state once both
 * instances are ready, then logs the figures (one JSON line, the source of
 * docs/scaling-out-redis.md's table) and asserts what holds in every
 * deployment: no wrong user, no torn pair, no unexpected failure, no write
 * answered 503 applied later, no stale answer outside a fault (strict: none
 * during one either, beyond `strictStaleBoundMs`), recovery within the bound.
 */
export async function verifyRun(run: RunToVerify) {
  const { users, instances, faults, mode } = run;
  const problems = emptyProblems(run.failures);
  checkQueries(users, faults, problems);
  for (const i of instances) expect(await i.store.whenReady(10_000)).toBe(true);
  await sleep(VISIBLE_AFTER_MS);
  const { lostUsers } = await checkFinalState(users, instances, faults, problems);
  const stats = summarise(users);
  const recoveries = faults.map((f) => f.recoveryMs);
  const maxLag = Math.max(0, ...problems.staleLagsMs);
  console.log(`[${run.tag}] ${JSON.stringify({
    scenario: run.scenario, mode, ...stats,
    staleInFault: problems.staleInFault.length, staleMaxLagMs: maxLag, stale: problems.stale.length,
    lateApplied: problems.lateApplied.length, fenced: instances.reduce((n, i) => n + i.store.stats.fenced, 0), lostUsers,
    losses: instances.map((i) => i.store.readiness().subscriptionLosses),
    faults: faults.map((f) => `${f.kind}: down ${f.end - f.start} ms, then back in ${f.recoveryMs} ms`),
  })}`);
  expect(problems.wrongUser, 'answers naming another user').toEqual([]);
  expect(problems.torn, 'torn configurations / client not built for the configuration').toEqual([]);
  expect(problems.unexpected, 'failures other than 503 context_store_unavailable / 409 not_configured').toEqual([]);
  expect(problems.lateApplied, 'writes answered 503 and applied later').toEqual([]);
  expect(problems.stale, 'stale answers outside a fault').toEqual([]);
  if (mode === 'strict' && run.strictStaleBoundMs === undefined) {
    expect(problems.staleInFault, 'strict: stale answers during a fault').toEqual([]);
  }
  if (mode === 'strict' && run.strictStaleBoundMs !== undefined) {
    expect(maxLag, 'strict: a stale answer only within the detection bound').toBeLessThanOrEqual(run.strictStaleBoundMs);
  }
  expect(recoveries.every((ms) => ms <= RECOVERY_BOUND_MS), `recovery times ${recoveries.join(', ')} ms`).toBe(true);
  expect(stats.ok).toBeGreaterThan(stats.unavailable503);
  return { stats, problems, lostUsers };
}
