/**
 * Requests per minute, on rate-limiter-flexible: one limiter per distinct
 * limit value (per-user overrides may differ), on the store the backend
 * gives (`RateLimiterMemory`, `RateLimiterRedis`). A refused request counts
 * in its minute, as rate-limiter-flexible does; a request admitted here but
 * refused by another limit is given back.
 *
 * @internal
 * @module
 */
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

export class RequestWindows {
  readonly #make: (points: number) => RateLimiterAbstract;
  readonly #limiters = new Map<number, RateLimiterAbstract>();

  /** `make(points)` builds a limiter of `points` per 60 s. */
  constructor(make: (points: number) => RateLimiterAbstract) {
    this.#make = make;
  }

  #limiter(points: number): RateLimiterAbstract {
    let limiter = this.#limiters.get(points);
    if (limiter === undefined) this.#limiters.set(points, (limiter = this.#make(points)));
    return limiter;
  }

  /**
   * Takes one request of `key`'s minute: `0` when admitted, else the ms
   * until the minute ends. Store failures reject with the store's error.
   */
  async take(key: string, points: number): Promise<number> {
    try {
      await this.#limiter(points).consume(key, 1);
      return 0;
    } catch (error) {
      if (error instanceof RateLimiterRes) return Math.max(1, error.msBeforeNext);
      throw error;
    }
  }

  /** Gives back a request taken by {@link take}. */
  async giveBack(key: string, points: number): Promise<void> {
    await this.#limiter(points).reward(key, 1);
  }
}
