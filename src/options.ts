/**
 * Option objects: every factory and constructor of this library refuses
 * options it does not know (a misspelt or koa-jwt-only option would otherwise
 * be silently ignored), naming the closest valid one.
 *
 * @internal
 * @module
 */

/**
 * Throws a `TypeError` naming the first key of `options` not in `known`, and
 * the closest known name when there is a plausible one.
 */
export function rejectUnknownOptions(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = closest(key, known);
    throw new TypeError(
      `${where}: unknown option "${key}"${near !== undefined ? `; did you mean "${near}"?` : ''} ` +
        `Valid options: ${known.join(', ')}.`,
    );
  }
}

/** The name in `names` nearest to `word` (edit distance ≤ a third of its length, at least 2), if any. */
export function closest(word: string, names: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const name of names) {
    const d = distance(lower, name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
