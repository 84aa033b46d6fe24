/**
 * Write fencing: a deadline on Redis's own clock after which a write is
 * refused inside its script (see scripts.ts).
 *
 * The store answers a write as failed when it has not been answered within
 * `commandTimeout` of being sent (local time `sentAt + timeout`). For that
 * answer to be final, Redis must never execute the write after it. Redis
 * compares its clock (`TIME` inside the script) with a deadline the store
 * computes from a lower bound of the offset between the two clocks:
 *
 *   measured: the local clock read t1 after a `TIME` reply r, so at the
 *   moment Redis read r the local clock was <= t1, and
 *   offset = redisClock - localClock >= r - t1 =: minOffset.
 *
 *   deadline = sentAt + timeout + minOffset (Redis clock). A script executed
 *   at local time L has redisClock = L + offset <= deadline only if
 *   L <= sentAt + timeout + (minOffset - offset) <= sentAt + timeout.
 *
 * So a fenced write runs before the store reports its failure, or never. The
 * local clock is monotonic (`performance.now()`); the offset is measured on
 * every node that may execute a script (every master of a Cluster: the
 * smallest offset is used, the conservative choice) and again every
 * heartbeat. A connection that closed (a restart, a Sentinel failover to
 * another server) forgets the offsets until they are measured again: no
 * write is sent in between. What is assumed: Redis's clock does not step
 * backwards by more than the time between two heartbeats' measurements.
 *
 * @internal
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';

/** The store's local clock: monotonic milliseconds. */
export const localNow = (): number => performance.now();

/** Lower bounds of the Redis-minus-local clock offset, per node. */
export class RedisClock {
  #offsets = new Map<string, number>();
  #generation = 0;

  /** Whether an offset is known for every node measured last (writes can be fenced). */
  get known(): boolean {
    return this.#offsets.size > 0;
  }

  /** Measures every node (`TIME`); returns the spread of their offsets in ms. */
  async measure(nodes: ReadonlyMap<string, Redis>): Promise<number> {
    const generation = this.#generation;
    const measured = new Map<string, number>();
    await Promise.all(
      [...nodes].map(async ([name, node]) => {
        const [sec, usec] = await node.time();
        const t1 = localNow();
        measured.set(name, Number(sec) * 1000 + Number(usec) / 1000 - t1);
      }),
    );
    // A connection closed while measuring: what was measured may be another server.
    if (generation !== this.#generation || measured.size === 0) return 0;
    this.#offsets = measured;
    const values = [...measured.values()];
    return Math.max(...values) - Math.min(...values);
  }

  /** Forgets every offset (a connection closed: the server behind it may have changed). */
  forget(): void {
    this.#generation++;
    this.#offsets = new Map();
  }

  /**
   * The fence deadline (Redis clock, ms) of a command sent at local time
   * `sentAt` whose failure is reported `timeout` ms later; `undefined` when
   * no offset is known.
   */
  deadline(sentAt: number, timeout: number): number | undefined {
    if (this.#offsets.size === 0) return undefined;
    return sentAt + timeout + Math.min(...this.#offsets.values());
  }
}
