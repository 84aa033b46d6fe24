/**
 * The in-process usage backend, for one instance: counters in Maps, token
 * reservations and concurrency slots checked and taken in one synchronous
 * step (nothing can interleave), requests per minute on
 * rate-limiter-flexible's `RateLimiterMemory`.
 *
 * @module
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { periodStart } from './fields.js';
import { RequestWindows } from './rate.js';
import type { Admission, BeginRequest, Booking, RawUsage, UsageBackend } from './types.js';

interface UserState {
  counters: Map<string, number>;
  /** Tokens booked per period start. */
  used: Map<number, number>;
  reserved: Map<number, number>;
  /** callId → [period start, estimate, lease end] of calls in flight. */
  calls: Map<string, [number, number, number]>;
  /** callIds already booked (a booking applies once): this generation and the one before. */
  booked: Set<string>;
  bookedBefore: Set<string>;
}

/** Options of {@link MemoryUsageBackend}. */
export interface MemoryUsageBackendOptions {
  /**
   * How many booked call ids each user remembers (at least half of this,
   * the most recent), so that a booking given twice applies once.
   * @default 10_000
   */
  rememberBookings?: number;
}

/** Usage in this process only (one instance). */
export class MemoryUsageBackend implements UsageBackend {
  readonly kind = 'memory';
  readonly remote = false;
  readonly #users = new Map<string, UserState>();
  readonly #windows = new RequestWindows((points) => new RateLimiterMemory({ points, duration: 60 }));
  readonly #remember: number;

  constructor(options: MemoryUsageBackendOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('MemoryUsageBackend(options): options must be an object');
    for (const key of Object.keys(options)) {
      if (key !== 'rememberBookings') throw new TypeError(`MemoryUsageBackend: unknown option "${key}"; known: rememberBookings`);
    }
    const { rememberBookings = 10_000 } = options;
    if (!Number.isInteger(rememberBookings) || rememberBookings < 1) throw new TypeError('options.rememberBookings must be a positive integer');
    this.#remember = rememberBookings;
  }

  #state(userUuid: string): UserState {
    let s = this.#users.get(userUuid);
    if (s === undefined) {
      s = { counters: new Map(), used: new Map(), reserved: new Map(), calls: new Map(), booked: new Set(), bookedBefore: new Set() };
      this.#users.set(userUuid, s);
    }
    return s;
  }

  async begin(request: BeginRequest): Promise<Admission> {
    const { userUuid, callId, estimate, limits, now, leaseMs } = request;
    const rpm = limits.requestsPerMinute;
    if (rpm !== undefined) {
      const wait = await this.#windows.take(userUuid, rpm);
      if (wait > 0) return { ok: false, limit: 'requests', retryAfterMs: wait };
    }
    // From here on synchronous: the check and the reservation are one step.
    const s = this.#state(userUuid);
    if (s.calls.has(callId) || s.booked.has(callId) || s.bookedBefore.has(callId)) return { ok: true };
    const start = periodStart(now, limits.periodMs);
    for (const [id, [, , until]] of s.calls) if (until <= now) s.calls.delete(id);
    let refusal: Admission | undefined;
    if (limits.concurrent !== undefined && s.calls.size >= limits.concurrent) {
      refusal = { ok: false, limit: 'concurrent', retryAfterMs: 1000 };
    } else if (limits.tokensPerPeriod !== undefined && (s.used.get(start) ?? 0) + (s.reserved.get(start) ?? 0) >= limits.tokensPerPeriod) {
      refusal = { ok: false, limit: 'tokens', retryAfterMs: start + limits.periodMs - now };
    }
    if (refusal !== undefined) {
      if (rpm !== undefined) await this.#windows.giveBack(userUuid, rpm);
      return refusal;
    }
    for (const old of s.used.keys()) if (old < start) s.used.delete(old);
    for (const old of s.reserved.keys()) if (old < start) s.reserved.delete(old);
    s.reserved.set(start, (s.reserved.get(start) ?? 0) + estimate);
    s.calls.set(callId, [start, estimate, now + leaseMs]);
    return { ok: true };
  }

  async book(booking: Booking): Promise<void> {
    const s = this.#state(booking.userUuid);
    if (s.booked.has(booking.callId) || s.bookedBefore.has(booking.callId)) return;
    s.booked.add(booking.callId);
    // Two generations of at most half each: O(1) per booking, at least `rememberBookings / 2` remembered.
    if (s.booked.size >= this.#remember / 2) {
      s.bookedBefore = s.booked;
      s.booked = new Set();
    }
    const held = s.calls.get(booking.callId);
    let start = periodStart(booking.now, booking.periodMs);
    if (held !== undefined) {
      s.calls.delete(booking.callId);
      start = held[0];
      if (s.reserved.has(start)) s.reserved.set(start, s.reserved.get(start)! - held[1]);
    }
    if (booking.tokens !== 0) s.used.set(start, (s.used.get(start) ?? 0) + booking.tokens);
    for (const [field, n] of booking.counters) s.counters.set(field, (s.counters.get(field) ?? 0) + n);
    for (const [field, v] of booking.sets) s.counters.set(field, v);
    // Most recently active last, for users().
    this.#users.delete(booking.userUuid);
    this.#users.set(booking.userUuid, s);
  }

  async read(userUuid: string, periodMs: number, now: number): Promise<RawUsage> {
    const s = this.#users.get(userUuid);
    const start = periodStart(now, periodMs);
    return {
      userUuid,
      counters: new Map(s?.counters ?? []),
      tokensUsed: s?.used.get(start) ?? 0,
      tokensReserved: s?.reserved.get(start) ?? 0,
      inFlight: s?.calls.size ?? 0,
    };
  }

  async users(max: number): Promise<string[]> {
    return [...this.#users.keys()].filter((u) => this.#users.get(u)!.counters.size > 0).reverse().slice(0, max);
  }

  async close(): Promise<void> {
    this.#users.clear();
  }
}
