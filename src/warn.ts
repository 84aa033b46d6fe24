/**
 * Process warnings, each emitted at most once per code per process (like
 * lru-cache's own warnings), so a hot path cannot flood the log.
 *
 * @internal
 * @module
 */
const emitted = new Set<string>();

/** Type of every warning this library emits. */
export const WARNING_TYPE = 'KoaUserContextWarning';

/** Emits `message` with `code` unless a warning with that code was emitted already. */
export function warnOnce(code: string, message: string): void {
  if (emitted.has(code)) return;
  emitted.add(code);
  process.emitWarning(message, WARNING_TYPE, code);
}
