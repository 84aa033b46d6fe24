#!/usr/bin/env node
/**
 * `npm run test:lines` (the last step of `npm test`): the package/consumer
 * tests and the AsyncLocalStorage semantics tests on every supported Node
 * line other than the primary one, which runs the whole suite (Node 24, the
 * `node` devDependency in node_modules/.bin).
 *
 * Each line's binary comes from the npm registry (scripts/node-lines.mjs).
 * Each line runs vitest with that binary first on PATH, so the test workers,
 * the consumers' npm, tsc and apps all run on it.
 *
 *   node scripts/test-lines.mjs            # LINES of scripts/node-lines.mjs
 *   node scripts/test-lines.mjs 22.23.5    # one line
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { LINES, nodeBinary } from './node-lines.mjs';

/** What runs on every line. */
const LINE_TESTS = ['test/package/', 'test/als-semantics.test.ts'];
const root = join(import.meta.dirname, '..');

const lines = process.argv.length > 2 ? process.argv.slice(2) : LINES;
const started = Date.now();
const results = [];
for (const version of lines) {
  const bin = nodeBinary(version);
  console.log(`\n[test:lines] Node v${version}: vitest run ${LINE_TESTS.join(' ')}`);
  const t0 = Date.now();
  const res = spawnSync(bin, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...LINE_TESTS], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, PATH: `${join(bin, '..')}:${process.env.PATH ?? ''}` },
  });
  results.push({ version, ok: res.status === 0, seconds: Math.round((Date.now() - t0) / 1000) });
}
const failed = results.filter((r) => !r.ok);
console.log(
  `\n[test:lines] ${results.map((r) => `Node v${r.version} ${r.ok ? 'passed' : 'FAILED'} (${r.seconds} s)`).join(', ')}; ` +
    `${failed.length === 0 ? 'all lines passed' : `${failed.length} of ${results.length} lines failed`} in ${Math.round((Date.now() - started) / 1000)} s`,
);
process.exit(failed.length === 0 ? 0 : 1);
