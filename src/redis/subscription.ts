/**
 * The invalidation subscription and its health.
 *
 * Pub/sub is at-most-once: while the subscriber connection is down, or a
 * Cluster node no longer relays to the node it listens on, invalidations are
 * lost without an error. So the subscription is confirmed end to end: every
 * `beatInterval` (the `heartbeatInterval`, or less for `consistency:
 * 'strict'`) the store publishes a heartbeat through every node that
 * executes its scripts (the primary, or each Cluster master), by a script
 * that reports how many invalidations that node has numbered (see
 * confirmation.ts), and must hear each one back on its subscriber within two
 * `heartbeatInterval`s (rounds overlap). A round missing, an invalidation
 * found missing (a gap in the numbers), or the subscriber connection closing,
 * makes the subscription not `active` (near-cached contexts are not trusted,
 * `/ready` says so) until every node's heartbeat sent since has come back;
 * each time it becomes active again the `epoch` increases, so every context
 * cached before is read again. Two misses in a row re-subscribe on a fresh
 * connection (on a Cluster: to another master). `confirmedAt` is when the
 * latest round that came back through every node, with no gap, was sent.
 *
 * The heartbeat round also measures the Redis clocks used to fence writes,
 * and reads each node's `run_id`: a node that restarted (its data possibly
 * lost: a Cluster master restarted empty) or another server now behind the
 * same address makes the subscription unconfirmed as well, so contexts cached
 * from the server that was there before are read again. Without this, a
 * master that comes back within two intervals, or that the client drops from
 * its node list while it is down, would go unnoticed until
 * `revalidateInterval`.
 *
 * @internal
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { warnOnce } from '../warn.js';
import { Confirmation, parseLaneSeq, type Lanes } from './confirmation.js';
import type { RedisClock } from './fence.js';
import { evalScript } from './runner.js';
import { BEAT } from './scripts.js';
import { isCluster, masters, openSubscriber, type RedisClient } from './topology.js';

export interface SubscriptionOptions {
  client: RedisClient;
  channel: string;
  instanceId: string;
  /** How often the clocks and identities are checked; a round has two of these to come back. */
  heartbeatInterval: number;
  /** How often a heartbeat round is sent (at most `heartbeatInterval`). */
  beatInterval: number;
  clock: RedisClock;
  lanes: Lanes;
  /** Every invalidation on the channel. */
  onMessage: (invalidation: Invalidation) => void;
}

/** An invalidation as the scripts publish it: `<origin>#<lane>:<seq> <version|del> <user>`. */
export interface Invalidation {
  /** The instance that wrote. */
  origin: string;
  /** The version written, or `del`. */
  token: string;
  userUuid: string;
}

/** How the invalidation subscription is: what `/ready` reports. */
export type SubscriptionState = 'subscribed' | 'unconfirmed' | 'disconnected';

export class Subscription {
  readonly #o: SubscriptionOptions;
  #sub: Redis;
  #attempt = 0;
  #subscribed = false;
  /** When the subscriber last stopped being subscribed (or was opened). */
  #unsubscribedSince = performance.now();
  #active = false;
  #epoch = 0;
  /** The last heartbeat round sent, and when each outstanding round was sent. */
  #round = 0;
  /** When the clocks and identities were last checked. */
  #checkedAt = Number.NEGATIVE_INFINITY;
  readonly #confirmation = new Confirmation();
  readonly #sentAt = new Map<number, number>();
  /** The nodes of each outstanding round, and the last round heard back per node. */
  readonly #nodesOf = new Map<number, readonly string[]>();
  readonly #heardRound = new Map<string, number>();
  /** The nodes of the last round sent. */
  #lastNodes: readonly string[] = [];
  /** Confirmation needs every node's heartbeat from this round on. */
  #confirmFrom = Number.POSITIVE_INFINITY;
  /** Heartbeat checks failed in a row. */
  #misses = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The `run_id` each node answered last: a change is a restarted or replaced server. */
  readonly #runIds = new Map<string, string>();
  /** Times the subscription was lost (disconnection, a missed heartbeat, a restarted node). */
  losses = 0;

  constructor(options: SubscriptionOptions) {
    this.#o = options;
    this.#sub = this.#open();
    this.#timer = setInterval(() => this.#beat(), options.beatInterval);
    this.#timer.unref();
  }

  /** Subscribed and confirmed by heartbeats: invalidations arrive. */
  get active(): boolean {
    return this.#active;
  }

  /** Increases each time the subscription becomes active again. */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Local time (`performance.now()`) at which the latest heartbeat round that
   * came back through every node, with no invalidation missing, was sent;
   * `-Infinity` when not `active`.
   */
  get confirmedAt(): number {
    return this.#active ? this.#confirmation.confirmedAt(this.#lastNodes) : Number.NEGATIVE_INFINITY;
  }

  /** Invalidations found missing (gaps in their numbers) since the store started. */
  get gaps(): number {
    return this.#confirmation.gaps;
  }

  get state(): SubscriptionState {
    return this.#active ? 'subscribed' : this.#subscribed ? 'unconfirmed' : 'disconnected';
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#active = this.#subscribed = false;
    await quit(this.#sub);
  }

  /** Starts a heartbeat round now (the command connection is back). */
  kick(): void {
    this.#send();
  }

  #open(): Redis {
    const sub = openSubscriber(this.#o.client, `koa-user-context:${this.#o.instanceId}:sub`, this.#attempt++);
    sub.on('error', (error: Error) => {
      warnOnce('KUC_REDIS_ERROR', `Redis connection error (the client reconnects by itself): ${error.message}`);
    });
    sub.on('ready', () => {
      // A new connection: the numbers seen on the one before say nothing about it.
      if (sub === this.#sub) this.#confirmation.reset();
      sub.subscribe(this.#o.channel).then(
        () => {
          if (sub !== this.#sub) return;
          this.#subscribed = true;
          this.#confirmFrom = this.#round + 1;
          this.#send();
        },
        (error: unknown) => warnOnce('KUC_REDIS_SUBSCRIBE_FAILED', `Subscribing to ${this.#o.channel} failed: ${String(error)}`),
      );
    });
    sub.on('close', () => {
      if (sub !== this.#sub) return;
      if (this.#subscribed) this.#unsubscribedSince = performance.now();
      this.#subscribed = false;
      this.#unconfirm();
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#o.channel || sub !== this.#sub) return;
      // `<origin> hb <round>:<node> <lane>:<seq>`: heartbeats, ours (counted) or another instance's (numbers only);
      // `<origin>#<lane>:<seq> <version|del> <user>`: invalidations.
      const space = message.indexOf(' ');
      if (message.startsWith(' hb ', space)) {
        const [body, numbered] = message.slice(space + 4).split(' ');
        const n = parseLaneSeq(numbered);
        if (n !== undefined && !this.#confirmation.heartbeat(n.lane, n.seq)) this.#gap();
        if (message.slice(0, space) === this.#o.instanceId) this.#heard(body!);
      } else {
        const hash = message.indexOf('#');
        const numbered = hash >= 0 && hash < space;
        const n = numbered ? parseLaneSeq(message.slice(hash + 1, space)) : undefined;
        if (n !== undefined && !this.#confirmation.invalidation(n.lane, n.seq)) this.#gap();
        const user = message.indexOf(' ', space + 1);
        if (space < 0 || user < 0) return;
        const origin = message.slice(0, numbered ? hash : space);
        this.#o.onMessage({ origin, token: message.slice(space + 1, user), userUuid: message.slice(user + 1) });
      }
    });
    return sub;
  }

  /** Invalidations can no longer be trusted to arrive (the subscription itself may still be there). */
  #deactivate(): void {
    if (this.#active) {
      this.#active = false;
      this.losses++;
    }
  }

  /** Deactivates until every node's heartbeat sent from the next round on has come back. */
  #unconfirm(): void {
    this.#deactivate();
    this.#confirmation.unconfirm();
    this.#confirmFrom = this.#round + 1;
  }

  /** An invalidation went missing on its way here, although heartbeats arrive. */
  #gap(): void {
    warnOnce(
      'KUC_REDIS_INVALIDATION_GAP',
      'An invalidation was lost on its way to this instance (a gap in their numbers) while heartbeats still arrive; ' +
        'near-cached contexts are read again before they are trusted.',
    );
    this.#unconfirm();
  }

  /**
   * Every beat: checks that each round sent at least two heartbeat intervals
   * ago came back through every node (rounds overlap, so a slow event loop
   * delays a confirmation rather than failing it), then sends the next one.
   */
  #beat(): void {
    if (this.#closed) return;
    const now = performance.now();
    const cluster = isCluster(this.#o.client);
    let missing: string[] = [];
    let checked = false;
    for (const [round, sentAt] of this.#sentAt) {
      if (now - sentAt < 2 * this.#o.heartbeatInterval * 0.95) continue;
      checked = true;
      missing = (this.#nodesOf.get(round) ?? []).filter((node) => (this.#heardRound.get(node) ?? 0) < round);
      this.#sentAt.delete(round);
      this.#nodesOf.delete(round);
      if (missing.length > 0) break;
    }
    const missed = missing.length > 0 && this.#subscribed;
    if (checked) this.#misses = missed ? this.#misses + 1 : 0;
    if (missed) {
      warnOnce(
        'KUC_REDIS_SUBSCRIPTION_LOST',
        `Invalidations stopped arriving (no heartbeat back through ${missing.join(', ')} within two intervals); ` +
          'near-cached contexts are read again before they are trusted, and the store re-subscribes.',
      );
      // Not trusted any more, until every node's heartbeat sent from now on comes back.
      this.#unconfirm();
      this.#sentAt.clear();
      this.#nodesOf.clear();
    }
    // Missed twice in a row, or a Cluster subscriber that cannot reconnect (its node is gone):
    // start over on a fresh connection (on a Cluster: another master).
    const stuck = cluster && !this.#subscribed && now - this.#unsubscribedSince > 2 * this.#o.heartbeatInterval;
    if (this.#misses >= 2 || stuck) {
      this.#misses = 0;
      const old = this.#sub;
      this.#subscribed = false;
      this.#unsubscribedSince = now;
      if (cluster) {
        this.#sub = this.#open();
        void quit(old);
      } else {
        old.disconnect(true);
      }
    }
    this.#send();
  }

  /** Publishes a heartbeat round through every node; every `heartbeatInterval`, measures the clocks and identities. */
  #send(): void {
    const client = this.#o.client;
    if (this.#closed) return;
    if (client.status !== 'ready') {
      this.#sentAt.clear();
      this.#nodesOf.clear();
      this.#unconfirm();
      return;
    }
    const nodes = masters(client);
    const round = ++this.#round;
    const now = performance.now();
    this.#sentAt.set(round, now);
    this.#confirmation.sent(round, now);
    this.#lastNodes = [...nodes.keys()];
    this.#nodesOf.set(round, this.#lastNodes);
    for (const [name, node] of nodes) {
      const lane = this.#o.lanes.forNode(name);
      // No lane (a Cluster's slots not known yet): no heartbeat, so nothing is confirmed through this node.
      if (lane === undefined) continue;
      evalScript(node, BEAT, [lane.key], [this.#o.channel, `${this.#o.instanceId} hb ${round}:${name}`, lane.id]).catch(() => {});
    }
    if (now - this.#checkedAt < this.#o.heartbeatInterval * 0.95) return;
    this.#checkedAt = now;
    this.#o.clock.measure(nodes).then(
      (spread) => {
        if (spread > this.#o.heartbeatInterval) {
          warnOnce('KUC_REDIS_CLOCK_SPREAD', `The clocks of the Redis Cluster masters differ by ${Math.round(spread)} ms; ` +
            'writes are fenced with the earliest one, so some fail early. Synchronise their clocks (NTP).');
        }
      },
      () => {},
    );
    void this.#checkIdentities(nodes);
  }

  /** Reads every node's `run_id`; one that changed since the last round distrusts the near-cache. */
  async #checkIdentities(nodes: ReadonlyMap<string, Redis>): Promise<void> {
    const replies = await Promise.all(
      [...nodes].map(async ([name, node]) => [name, runIdOf(String(await node.call('INFO', 'server')))] as const),
    ).catch(() => undefined);
    if (replies === undefined || this.#closed) return;
    const changed: string[] = [];
    for (const [name, runId] of replies) {
      if (runId === undefined) continue;
      const before = this.#runIds.get(name);
      if (before !== undefined && before !== runId) changed.push(name);
      this.#runIds.set(name, runId);
    }
    if (changed.length === 0) return;
    warnOnce(
      'KUC_REDIS_NODE_RESTARTED',
      `Redis at ${changed.join(', ')} restarted or was replaced (its run_id changed), so data it held may be gone; ` +
        'near-cached contexts are read again before they are trusted.',
    );
    this.#unconfirm();
  }

  #heard(body: string): void {
    const colon = body.indexOf(':');
    const round = Number(body.slice(0, colon));
    const node = body.slice(colon + 1);
    if (!(round > (this.#heardRound.get(node) ?? 0))) return;
    this.#heardRound.set(node, round);
    if (round >= this.#confirmFrom) this.#confirmation.heard(round, node);
    if (!this.#subscribed || this.#active) return;
    if (round >= this.#confirmFrom && this.#lastNodes.every((n) => (this.#heardRound.get(n) ?? 0) >= this.#confirmFrom)) {
      this.#epoch++;
      this.#active = true;
    }
  }
}

/** The `run_id` line of an `INFO server` reply. */
function runIdOf(info: string): string | undefined {
  return /^run_id:([0-9a-f]+)\s*$/m.exec(info)?.[1];
}

export async function quit(client: RedisClient | undefined): Promise<void> {
  if (client === undefined || client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
