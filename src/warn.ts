/**
 * Process warnings, each emitted at most once per cause per process (like
 * lru-cache's own warnings), so a hot path cannot flood the log. The cause is
 * the code, or a finer key such as code + call site.
 *
 * @internal
 * @module
 */
const emitted = new Set<string>();

/** Type of every warning this library emits. */
export const WARNING_TYPE = 'KoaUserContextWarning';

/**
 * Emits `message` with `code` unless a warning with the same `key` (by
 * default the code itself) was emitted already.
 */
export function warnOnce(code: string, message: string, key: string = code): void {
  if (emitted.has(key)) return;
  emitted.add(key);
  process.emitWarning(message, WARNING_TYPE, code);
}

/**
 * `file:line:column` of the code that called `fn` (the frame just above it),
 * or `'<unknown>'`. Costs one small stack capture.
 */
export function callSiteOf(fn: Function): string {
  const limit = Error.stackTraceLimit;
  const holder: { stack?: string } = {};
  try {
    Error.stackTraceLimit = 1;
    Error.captureStackTrace(holder, fn);
  } finally {
    Error.stackTraceLimit = limit;
  }
  const line = holder.stack?.split('\n')[1];
  const match = line === undefined ? null : /\(?((?:[a-z]+:\/\/)?[^()\s]+:\d+:\d+)\)?\s*$/i.exec(line);
  if (match === null) return '<unknown>';
  const site = match[1]!;
  return site.startsWith('file://') ? decodeURIComponent(site.slice('file://'.length)) : site;
}
