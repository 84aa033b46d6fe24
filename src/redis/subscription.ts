/**
 * The invalidation subscription and its health.
 *
 * Pub/sub is at-most-once: while the subscriber connection is down, or a
 * Cluster node no longer relays to the node it listens on, invalidations are
 * lost without an error. So the subscription is confirmed end to end: every
 * `heartbeatInterval` the store publishes a heartbeat through every node that
 * executes its scripts (the primary, or each Cluster master) and must hear
 * each one back on its subscriber before the next round. Until a round is
 * heard completely the subscription is not `active` (near-cached contexts are
 * not trusted, `/ready` says so); each time it becomes active again the
 * `epoch` increases, so every context cached before is read again.
 *
 * The heartbeat round also measures the Redis clocks used to fence writes.
 *
 * @internal
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { warnOnce } from '../warn.js';
import type { RedisClock } from './fence.js';
import { isCluster, masters, openSubscriber, type RedisClient } from './topology.js';

export interface SubscriptionOptions {
  client: RedisClient;
  channel: string;
  instanceId: string;
  heartbeatInterval: number;
  clock: RedisClock;
  /** Every message on the channel except this instance's heartbeats. */
  onMessage: (message: string) => void;
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
  #round = 0;
  /** Heartbeat rounds missed in a row. */
  #misses = 0;
  #roundSentAt = 0;
  /** Nodes whose heartbeat of the current round has not come back. */
  #awaiting = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Times the subscription was lost (disconnection or a missed heartbeat). */
  losses = 0;

  constructor(options: SubscriptionOptions) {
    this.#o = options;
    this.#sub = this.#open();
    this.#timer = setInterval(() => this.#beat(), options.heartbeatInterval);
    this.#timer.unref();
  }

  /** Subscribed and confirmed by the last heartbeat round: invalidations arrive. */
  get active(): boolean {
    return this.#active;
  }

  /** Increases each time the subscription becomes active again. */
  get epoch(): number {
    return this.#epoch;
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

  #open(): Redis {
    const sub = openSubscriber(this.#o.client, `koa-user-context:${this.#o.instanceId}:sub`, this.#attempt++);
    sub.on('error', (error: Error) => {
      warnOnce('KUC_REDIS_ERROR', `Redis connection error (the client reconnects by itself): ${error.message}`);
    });
    sub.on('ready', () => {
      sub.subscribe(this.#o.channel).then(
        () => {
          if (sub !== this.#sub) return;
          this.#subscribed = true;
          this.#awaiting.clear();
          this.#beat();
        },
        (error: unknown) => warnOnce('KUC_REDIS_SUBSCRIBE_FAILED', `Subscribing to ${this.#o.channel} failed: ${String(error)}`),
      );
    });
    sub.on('close', () => {
      if (sub !== this.#sub) return;
      if (this.#subscribed) this.#unsubscribedSince = performance.now();
      this.#subscribed = false;
      this.#deactivate();
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#o.channel || sub !== this.#sub) return;
      // `<origin> hb <round>:<node>`: heartbeats, ours (counted) or another instance's (ignored).
      const space = message.indexOf(' ');
      if (message.startsWith(' hb ', space)) {
        if (message.slice(0, space) === this.#o.instanceId) this.#heard(message.slice(space + 4));
      } else {
        this.#o.onMessage(message);
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

  /** Starts a heartbeat round now unless one is under way (the command connection is back). */
  kick(): void {
    if (this.#awaiting.size === 0) this.#beat();
  }

  /** One heartbeat round: checks the previous one came back, measures the clocks, publishes the next. */
  #beat(): void {
    if (this.#closed) return;
    // A round gets one whole interval to come back (a kick's round: until the tick after).
    if (this.#awaiting.size > 0 && performance.now() - this.#roundSentAt < this.#o.heartbeatInterval * 0.9) return;
    const cluster = isCluster(this.#o.client);
    const missed = this.#awaiting.size > 0 && this.#subscribed;
    this.#misses = missed ? this.#misses + 1 : 0;
    if (missed) {
      warnOnce(
        'KUC_REDIS_SUBSCRIPTION_LOST',
        `Invalidations stopped arriving (no heartbeat back through ${[...this.#awaiting].join(', ')} within one ` +
          'interval); near-cached contexts are read again before they are trusted, and the store re-subscribes.',
      );
      // Not trusted any more; a later complete round restores the trust (and the epoch makes every cached context be read again).
      this.#deactivate();
    }
    // Two rounds missed in a row, or a Cluster subscriber that cannot reconnect (its node is gone):
    // start over on a fresh connection (on a Cluster: another master).
    const stuck = cluster && !this.#subscribed && performance.now() - this.#unsubscribedSince > 2 * this.#o.heartbeatInterval;
    if (this.#misses >= 2 || stuck) {
      this.#misses = 0;
      const old = this.#sub;
      this.#subscribed = false;
      this.#unsubscribedSince = performance.now();
      if (cluster) {
        this.#sub = this.#open();
        void quit(old);
      } else {
        old.disconnect(true);
      }
    }
    const client = this.#o.client;
    if (client.status !== 'ready') {
      this.#awaiting.clear();
      this.#deactivate();
      return;
    }
    const nodes = masters(client);
    const round = ++this.#round;
    this.#roundSentAt = performance.now();
    this.#awaiting = new Set(nodes.keys());
    this.#o.clock.measure(nodes).then(
      (spread) => {
        if (spread > this.#o.heartbeatInterval) {
          warnOnce('KUC_REDIS_CLOCK_SPREAD', `The clocks of the Redis Cluster masters differ by ${Math.round(spread)} ms; ` +
            'writes are fenced with the earliest one, so some fail early. Synchronise their clocks (NTP).');
        }
      },
      () => {},
    );
    for (const [name, node] of nodes) {
      node.publish(this.#o.channel, `${this.#o.instanceId} hb ${round}:${name}`).catch(() => {});
    }
  }

  #heard(body: string): void {
    const colon = body.indexOf(':');
    if (Number(body.slice(0, colon)) !== this.#round) return;
    this.#awaiting.delete(body.slice(colon + 1));
    if (this.#awaiting.size === 0 && this.#subscribed && !this.#active) {
      this.#epoch++;
      this.#active = true;
    }
  }
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
