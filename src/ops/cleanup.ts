/**
 * The seed design's periodic cleanup of inactive contexts. The store's
 * sliding TTL already evicts idle users; these functions keep the seed's API
 * and let an app purge with its own age limit on its own schedule.
 *
 * @module
 */
import { getDefaultStore } from '../store/default-store.js';
import type { ContextStore } from '../store/store.js';

const HOUR = 3_600_000;

/**
 * Removes the contexts whose last access is more than `maxAgeHours` ago (and
 * that no request is using), disposing their resources. Returns how many.
 */
export function cleanupInactiveUserContexts(maxAgeHours = 24, store: ContextStore = getDefaultStore()): number {
  if (typeof maxAgeHours !== 'number' || !Number.isFinite(maxAgeHours) || maxAgeHours < 0) {
    throw new TypeError('cleanupInactiveUserContexts(maxAgeHours): maxAgeHours must be a number >= 0');
  }
  return store.cleanupInactive(maxAgeHours * HOUR);
}

/** Options of {@link startCleanup}. */
export interface StartCleanupOptions {
  /**
   * Contexts idle longer than this are removed.
   * @default 24
   */
  maxAgeHours?: number;
  /**
   * Store to clean.
   * @default the default store
   */
  store?: ContextStore;
  /**
   * Told how many contexts each run removed.
   * @default undefined
   */
  onCleanup?: (removed: number) => void;
}

/**
 * Runs `cleanupInactiveUserContexts` every `intervalMs` on an `unref()`'d
 * timer (it never keeps the process alive). Returns a function that stops it.
 */
export function startCleanup(intervalMs = HOUR, options: StartCleanupOptions = {}): () => void {
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new TypeError('startCleanup(intervalMs): intervalMs must be a positive number of milliseconds');
  }
  const { maxAgeHours = 24, store = getDefaultStore(), onCleanup } = options;
  if (typeof maxAgeHours !== 'number' || !Number.isFinite(maxAgeHours) || maxAgeHours < 0) {
    throw new TypeError('startCleanup(): options.maxAgeHours must be a number >= 0');
  }
  const timer = setInterval(() => {
    const removed = cleanupInactiveUserContexts(maxAgeHours, store);
    onCleanup?.(removed);
  }, intervalMs);
  timer.unref();
  return function stopCleanup() {
    clearInterval(timer);
  };
}
