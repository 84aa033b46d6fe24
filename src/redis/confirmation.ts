/**
 * What a heartbeat confirms, and since when.
 *
 * A heartbeat that came back says more than "the subscription is alive" only
 * if it travelled the way invalidations travel and nothing was lost before
 * it. So every node that runs the store's scripts keeps a counter, its
 * **lane** (`<prefix>seq` on a single Redis; on a Cluster one key per master,
 * `<prefix>seq:{<tag>}` with a tag whose slot that master serves):
 *
 *   - every invalidation script increments its node's lane inside the script
 *     and publishes the number with the invalidation (`<origin>#<lane>:<seq>`);
 *   - every heartbeat is published by a script on the node that reads the
 *     lane (`... hb <round>:<node> <lane>:<seq>`): on that node it comes after
 *     every invalidation numbered up to `seq`.
 *
 * Messages published on one node reach a subscriber in the order they were
 * published (one connection; on a Cluster, one bus link per pair of nodes).
 * So an invalidation whose number does not follow the last one of its lane,
 * or a heartbeat reporting a number other than the last one heard, means an
 * invalidation was lost on the way (a dropped message, a bus link that
 * reconnected, a counter reset by a restart or failover): a **gap**, which
 * distrusts the near-cache as a lost subscription does.
 *
 * The confirmation time is the local time at which the latest heartbeat
 * round that came back through every node, with no gap since, was sent: on
 * each node its `PUBLISH` ran after that moment, so every invalidation
 * published before it has been applied here. A write acknowledged before it
 * is not served stale; `consistency: 'strict'` serves the near-cache only
 * while this time is less than `maxStaleness` ago.
 *
 * On a Cluster the write scripts reach their node's lane key without
 * declaring it (it sits in another slot of the same master: Redis allows
 * this for scripts without flags); a slot that moved makes the script fail
 * ("non local key"), which is answered 503 and fenced like any failed write.
 *
 * @internal
 * @module
 */
import { ContextStoreUnavailableError } from '../errors.js';
import { isCluster, slotOf, type RedisClient } from './topology.js';

/** A node's invalidation counter: its id in messages and its key. */
export interface Lane {
  readonly id: string;
  readonly key: string;
}

/** Which lane each node (and each user key) writes to. */
export class Lanes {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #single: Lane;
  readonly #byNode = new Map<string, { lane: Lane; slot: number }>();

  constructor(client: RedisClient, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
    this.#single = { id: 'p', key: `${prefix}seq` };
  }

  /** Whether a write script can declare the lane key with the user's key (one node: yes; a Cluster: another slot). */
  get declared(): boolean {
    return !isCluster(this.#client);
  }

  /** The lane of a node named as by `masters()`; `undefined` while a Cluster's slots are unknown. */
  forNode(name: string): Lane | undefined {
    const client = this.#client;
    if (!isCluster(client)) return this.#single;
    const known = this.#byNode.get(name);
    if (known !== undefined && client.slots[known.slot]?.[0] === name) return known.lane;
    for (let i = 0; i < 10_000; i++) {
      const tag = `n${i}`;
      const slot = slotOf(tag);
      if (client.slots[slot]?.[0] !== name) continue;
      const lane = { id: tag, key: `${this.#prefix}seq:{${tag}}` };
      this.#byNode.set(name, { lane, slot });
      return lane;
    }
    return undefined;
  }

  /** The lane a write on `key` numbers its invalidation in; 503 while a Cluster's slots are unknown. */
  of(key: string): Lane {
    const lane = this.forKey(key);
    if (lane === undefined) throw new ContextStoreUnavailableError('The Redis Cluster slots are not known yet; retry in a few seconds.');
    return lane;
  }

  /** The lane of the node a script on `key` runs on. */
  forKey(key: string): Lane | undefined {
    const client = this.#client;
    if (!isCluster(client)) return this.#single;
    const owner = client.slots[slotOf(key)]?.[0];
    return owner === undefined ? undefined : this.forNode(owner);
  }
}

/** `<lane>:<seq>` → its parts, or `undefined` (a message from a version without lanes). */
export function parseLaneSeq(text: string | undefined): { lane: string; seq: number } | undefined {
  if (text === undefined) return undefined;
  const colon = text.lastIndexOf(':');
  const seq = Number(text.slice(colon + 1));
  return colon <= 0 || !Number.isSafeInteger(seq) ? undefined : { lane: text.slice(0, colon), seq };
}

/** Heartbeat rounds sent, heard back, and the invalidation numbers seen per lane. */
export class Confirmation {
  /** The last invalidation number seen per lane (from an invalidation or a heartbeat). */
  readonly #last = new Map<string, number>();
  /** Local send time of the recent rounds. */
  readonly #sentAt = new Map<number, number>();
  /** Per node, the send time of the latest round heard back since the confirmation was (re)started. */
  readonly #heard = new Map<string, number>();
  /** Invalidations found missing. */
  gaps = 0;

  /** A round is being sent now (`at`: local time, before the commands leave). */
  sent(round: number, at: number): void {
    this.#sentAt.set(round, at);
    this.#sentAt.delete(round - 512);
  }

  /** Nothing heard so far confirms anything any more (a missed round, a gap, a restarted node). */
  unconfirm(): void {
    this.#heard.clear();
  }

  /** A new subscriber connection: numbers seen on the old one say nothing about it. */
  reset(): void {
    this.#heard.clear();
    this.#last.clear();
  }

  /** This instance's heartbeat of `round` came back through `node`. */
  heard(round: number, node: string): void {
    const at = this.#sentAt.get(round);
    if (at !== undefined && at > (this.#heard.get(node) ?? Number.NEGATIVE_INFINITY)) this.#heard.set(node, at);
  }

  /**
   * The confirmation time (local clock): every node in `nodes` has had a
   * heartbeat sent at or after it come back; `-Infinity` when one has not.
   */
  confirmedAt(nodes: readonly string[]): number {
    if (nodes.length === 0) return Number.NEGATIVE_INFINITY;
    let at = Number.POSITIVE_INFINITY;
    for (const node of nodes) at = Math.min(at, this.#heard.get(node) ?? Number.NEGATIVE_INFINITY);
    return at;
  }

  /** An invalidation numbered `seq` on `lane`: `false` when one before it went missing. */
  invalidation(lane: string, seq: number): boolean {
    const last = this.#last.get(lane);
    // Before the lane's first heartbeat on this connection, there is nothing to compare with.
    if (last === undefined) return true;
    this.#last.set(lane, seq);
    return this.#check(seq === last + 1);
  }

  /** A heartbeat (any instance's) saying `lane` had published `seq` invalidations: `false` when one went missing. */
  heartbeat(lane: string, seq: number): boolean {
    const last = this.#last.get(lane);
    this.#last.set(lane, seq);
    return this.#check(last === undefined || last === seq);
  }

  #check(ok: boolean): boolean {
    if (!ok) this.gaps++;
    return ok;
  }
}
