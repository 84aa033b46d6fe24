/**
 * The live MCP connections of one factory (one instance): at most one per
 * pool key (user + server configuration, or server configuration alone for
 * shared servers), built on first use by one single-flight connect, rebuilt
 * on the next use after it died, and bounded by `maxConnections`: when the
 * bound is reached the least recently used *idle* link is closed first —
 * never one with a call in flight, nor one that has not served its first
 * call yet (the connect a handle makes when it is created is not a use) — and
 * rebuilt on demand later.
 *
 * @internal
 * @module
 */
import { McpBackoffError, McpConnectError, McpPoolExhaustedError } from '../../errors.js';
import type { Backoff, McpLink } from './health.js';

/** One pool key: the handles on it, its link and its use. */
export interface PoolEntry {
  readonly key: string;
  /** Opens a new link for this entry. */
  readonly open: () => Promise<McpLink>;
  /** Server name, for errors. */
  readonly name: string;
  link: McpLink | undefined;
  building: Promise<McpLink> | undefined;
  /** Between taking a slot and the connect settling. */
  connecting: boolean;
  /**
   * Until when (ms since the epoch) the link may not be evicted because it
   * has not served a call yet; 0 once it has. A link nobody uses within
   * `acquireTimeout` of connecting is abandoned and may be evicted.
   */
  unusedUntil: number;
  /** Handles (logical connections) attached. */
  refs: number;
  /** Calls in flight on this entry. */
  inUse: number;
  lastUsed: number;
}

/** Counts of one pool, for tests, metrics and capacity planning. */
export interface McpPoolStats {
  /** Links alive or being built now (what `maxConnections` bounds). */
  live: number;
  /** Links with at least one call in flight. */
  inUse: number;
  /** Pool keys with at least one handle. */
  entries: number;
  /** Links opened / closed since the pool started. */
  opened: number;
  closed: number;
  /** Links closed to stay under `maxConnections`. */
  evicted: number;
  /** Of those, links closed before serving any call (abandoned for `acquireTimeout` after connecting). */
  evictedUnused: number;
  /** Calls served (tool calls, tool lists, `client()`); `opened / uses` is the churn under `maxConnections`. */
  uses: number;
  /** Links found dead (transport closed, child exited, session unknown) and dropped. */
  died: number;
  /** Connect attempts that failed. */
  connectFailures: number;
}

export class McpPool {
  readonly #max: number;
  readonly #acquireTimeout: number;
  readonly #backoff: Backoff;
  readonly #entries = new Map<string, PoolEntry>();
  /** Entries holding a slot (a live or building link), in least-recently-used order. */
  readonly #slots = new Set<PoolEntry>();
  readonly #waiters = new Set<() => void>();
  readonly #closing = new Set<Promise<void>>();
  readonly #closed = new WeakSet<McpLink>();
  readonly #stats = { opened: 0, closed: 0, evicted: 0, evictedUnused: 0, uses: 0, died: 0, connectFailures: 0 };

  constructor(options: { max: number; acquireTimeout: number; backoff: Backoff }) {
    this.#max = options.max;
    this.#acquireTimeout = options.acquireTimeout;
    this.#backoff = options.backoff;
  }

  get stats(): McpPoolStats {
    let inUse = 0;
    for (const e of this.#slots) if (e.inUse > 0 && e.link !== undefined) inUse++;
    return { live: this.#slots.size, inUse, entries: this.#entries.size, ...this.#stats };
  }

  /** Attaches a handle to `key`, creating the entry. */
  attach(key: string, name: string, open: () => Promise<McpLink>): PoolEntry {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = {
        key, name, open, link: undefined, building: undefined, connecting: false, unusedUntil: 0, refs: 0, inUse: 0, lastUsed: Date.now(),
      };
      this.#entries.set(key, entry);
    }
    entry.refs++;
    return entry;
  }

  /** Detaches a handle; the last one closes the link. */
  async detach(entry: PoolEntry): Promise<void> {
    entry.refs--;
    if (entry.refs > 0) return;
    this.#entries.delete(entry.key);
    const building = entry.building;
    if (building !== undefined) await building.catch(() => undefined);
    const link = entry.link;
    if (link !== undefined) await this.#closeLink(entry, link);
  }

  /**
   * Runs `fn` on the entry's live link, connecting first if needed. The link
   * counts as in use (never evicted) until `fn` settles. `connectOnly`: the
   * connect of a new handle, which leaves a new link unused (so protected
   * from eviction until its first call).
   */
  async use<T>(entry: PoolEntry, fn: (link: McpLink) => Promise<T>, connectOnly = false): Promise<T> {
    entry.inUse++;
    try {
      const link = await this.#ensure(entry);
      this.#touch(entry);
      if (!connectOnly) {
        entry.unusedUntil = 0;
        this.#stats.uses++;
      }
      return await fn(link);
    } finally {
      entry.inUse--;
      entry.lastUsed = Date.now();
      if (entry.inUse === 0) this.#wake();
    }
  }

  /** Drops `link` (found dead) from `entry`; the next use rebuilds. */
  async drop(entry: PoolEntry, link: McpLink, reason: string): Promise<void> {
    link.markDead(reason);
    if (entry.link === link) await this.#closeLink(entry, link, true);
  }

  /** Waits for every close started by the pool. */
  async settle(): Promise<void> {
    while (this.#closing.size > 0) await Promise.all([...this.#closing]);
  }

  async #ensure(entry: PoolEntry): Promise<McpLink> {
    const link = entry.link;
    if (link !== undefined) {
      if (link.alive) return link;
      await this.#closeLink(entry, link, true);
    }
    if (entry.building === undefined) {
      const building = this.#build(entry);
      entry.building = building;
      const clear = (): void => {
        if (entry.building === building) entry.building = undefined;
      };
      building.then(clear, clear);
    }
    return entry.building;
  }

  async #build(entry: PoolEntry): Promise<McpLink> {
    const wait = this.#backoff.waitLeft(entry.key);
    if (wait > 0) {
      throw new McpBackoffError(
        `MCP server "${entry.name}" could not be reached moments ago; retrying in ${wait} ms. ` +
          'Check that it is running; requests fail fast until then.',
        { retryAfterMs: wait },
      );
    }
    await this.#reserve(entry);
    entry.connecting = true;
    let link: McpLink;
    try {
      link = await entry.open();
    } catch (error) {
      entry.connecting = false;
      this.#slots.delete(entry);
      this.#stats.connectFailures++;
      const delay = this.#backoff.failed(entry.key);
      this.#wake();
      if (error instanceof McpConnectError && !(error instanceof McpBackoffError)) {
        throw new McpConnectError(error.message, { cause: error.cause, retryAfterMs: delay });
      }
      throw error;
    }
    this.#backoff.succeeded(entry.key);
    this.#stats.opened++;
    entry.connecting = false;
    entry.link = link;
    entry.unusedUntil = Date.now() + this.#acquireTimeout;
    link.onDead = () => {
      // Died by itself (child exited, transport closed): free the slot now.
      if (entry.link === link) void this.#closeLink(entry, link, true);
    };
    if (!link.alive) link.onDead('died while connecting');
    if (entry.refs === 0) {
      // Every handle left while connecting.
      await this.#closeLink(entry, link);
    }
    return link;
  }

  /** Takes a slot for `entry`, closing the least recently used idle link if the pool is full. */
  async #reserve(entry: PoolEntry): Promise<void> {
    const deadline = Date.now() + this.#acquireTimeout;
    for (;;) {
      if (this.#slots.size < this.#max) {
        this.#slots.add(entry);
        return;
      }
      const now = Date.now();
      const victim = this.#idleVictim(now);
      if (victim !== undefined) {
        this.#stats.evicted++;
        if (victim.unusedUntil !== 0) this.#stats.evictedUnused++;
        this.#slots.delete(victim);
        this.#slots.add(entry);
        // Wait for it to end (a stdio child exited and reaped): the bound holds for processes too.
        await this.#closeLink(victim, victim.link!);
        return;
      }
      const left = deadline - now;
      if (left <= 0) {
        throw new McpPoolExhaustedError(
          `All ${this.#max} MCP connections of this instance stayed in use for ${this.#acquireTimeout} ms, so none could ` +
            `be closed to connect to "${entry.name}". Raise maxConnections, or run more instances.`,
          { retryAfterMs: 1000 },
        );
      }
      // Woken by a call ending or a link closing; an unused link's protection ends by itself.
      await this.#waitForChange(Math.min(left, this.#nextUnprotected(now) - now));
    }
  }

  /** The least recently used entry whose link is alive, idle and has served a call (or was abandoned unused). */
  #idleVictim(now: number): PoolEntry | undefined {
    for (const e of this.#slots) {
      if (e.inUse === 0 && !e.connecting && e.link !== undefined && e.unusedUntil <= now) return e;
    }
    return undefined;
  }

  /** When the earliest idle, unused link stops being protected (`Infinity` if none). */
  #nextUnprotected(now: number): number {
    let next = Infinity;
    for (const e of this.#slots) {
      if (e.inUse === 0 && !e.connecting && e.link !== undefined && e.unusedUntil > now) next = Math.min(next, e.unusedUntil);
    }
    return next;
  }

  #touch(entry: PoolEntry): void {
    if (!this.#slots.has(entry)) return;
    this.#slots.delete(entry);
    this.#slots.add(entry);
  }

  #closeLink(entry: PoolEntry, link: McpLink, died = false): Promise<void> {
    if (entry.link === link) entry.link = undefined;
    if (entry.link === undefined && !entry.connecting) this.#slots.delete(entry);
    link.onDead = undefined;
    if (this.#closed.has(link)) return link.close();
    this.#closed.add(link);
    if (died) this.#stats.died++;
    const closing = link.close().catch(() => undefined).finally(() => {
      this.#stats.closed++;
      this.#closing.delete(closing);
    });
    this.#closing.add(closing);
    this.#wake();
    return closing;
  }

  #waitForChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}
