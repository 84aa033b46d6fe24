/**
 * examples/tick-object.ts: with one tick object retained, process.nextTick's tick literal keeps
 * its maps through full GCs at idle moments, and the inline caches of its key definitions stay
 * monomorphic; without it, the same history leaves the second to fifth keys MEGAMORPHIC (the
 * runtime path every tick pays for on Node 22 and 24). Each case is a fresh child process
 * (test/fixtures/tick-maps.ts) that prints nextTick's feedback with `%DebugPrint`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { literalStates } from '../bench/next-tick-feedback.js';

const root = join(import.meta.dirname, '..');

/** The states of nextTick's literal key definitions after the fixture's history, in order. */
async function statesAfterHistory(mode: 'retain' | 'none'): Promise<string[]> {
  const args = ['--allow-natives-syntax', '--expose-gc', '--import', 'tsx', join(root, 'test', 'fixtures', 'tick-maps.ts'), mode];
  // A file, not a pipe: V8 prints through C stdio, whose buffered bytes a pipe does not get.
  const dir = mkdtempSync(join(tmpdir(), 'kuc-tick-maps-'));
  const file = join(dir, 'stdout.txt');
  const stdout = openSync(file, 'w');
  try {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', stdout, 'pipe'], timeout: 20_000 });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`tick-maps.ts ${mode} exited with ${String(code)}\n${stderr}`);
    return literalStates(readFileSync(file, 'latin1'));
  } finally {
    closeSync(stdout);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('retainTickObject (examples/tick-object.ts)', () => {
  it(`on Node ${process.versions.node}, idle full GCs leave nextTick's tick literal MEGAMORPHIC unless a tick object is retained`, async () => {
    const [none, retained] = await Promise.all([statesAfterHistory('none'), statesAfterHistory('retain')]);
    // Node 26 builds ticks with a class: no literal, nothing to keep. This file runs on Node 24 (the suite's line).
    expect(none, 'nextTick builds no tick literal on this Node: examples/tick-object.ts is not needed here').toHaveLength(5);
    expect(none.slice(1), 'the literal kept its maps without help: has this Node line fixed it?').toEqual(Array(4).fill('MEGAMORPHIC'));
    expect(retained).toEqual(Array(5).fill('MONOMORPHIC'));
  });
});
