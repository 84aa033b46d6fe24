/**
 * Reading the state of `process.nextTick`'s tick literal (examples/tick-object.ts), for
 * bench/next-tick-state.ts and test/tick-object.test.ts: a process started with
 * `--allow-natives-syntax` prints nextTick's feedback vector, and the printed text gives the
 * state of each of the literal's key definitions.
 */

/**
 * Prints process.nextTick's feedback vector (its inline caches) on stdout. Needs
 * `--allow-natives-syntax`. V8 prints through C stdio: send stdout to a file, not a pipe,
 * which does not get the buffered bytes.
 */
export function printNextTickFeedback(): void {
  new Function('f', '%DebugPrint(f)')(process.nextTick);
}

/** The states of the literal's key definitions in printed feedback, in order: `MONOMORPHIC`, `MEGAMORPHIC`, … */
export function literalStates(printed: string): string[] {
  return [...printed.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]!);
}
