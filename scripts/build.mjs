// Builds the published package: dist/esm (ESM + .d.ts) and dist/cjs (CommonJS
// + .d.ts, marked by dist/cjs/package.json), from every entry src/<name>.ts
// listed in package.json "exports". Run by `npm run build` and by `prepack`,
// so `npm pack` / `npm publish` build by themselves.
//
// For resolvers that ignore "exports" (TypeScript's node10, old bundlers) each
// subpath also gets a stub folder <name>/package.json pointing into dist/cjs.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const subpaths = Object.keys(pkg.exports).filter((k) => k !== '.' && k !== './package.json').map((k) => k.slice(2));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const run = (...args) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' });

rmSync(join(root, 'dist'), { recursive: true, force: true });
for (const name of subpaths) rmSync(join(root, name), { recursive: true, force: true });

// ESM, with declarations: the type-checked build.
run('-p', 'tsconfig.build.json');
// CommonJS: the same sources emitted as CommonJS (already type-checked above).
run('-p', 'tsconfig.build-cjs.json');
// tsc emits `import.meta` unchanged into CommonJS, where it is a SyntaxError.
for (const file of walk(join(root, 'dist/cjs'))) {
  if (file.endsWith('.js') && /\bimport\.meta\b/.test(readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ''))) {
    throw new Error(`${relative(root, file)} uses import.meta, which CommonJS cannot run: import the module instead of createRequire(import.meta.url).`);
  }
}
writeFileSync(join(root, 'dist/cjs/package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
// The declarations are module-format neutral (no `export =`): the same files
// describe dist/cjs, where the nearest package.json makes TypeScript read them
// as CommonJS, so `require()` consumers get types that match the code.
for (const file of walk(join(root, 'dist/esm'))) {
  if (!file.endsWith('.d.ts')) continue;
  const target = join(root, 'dist/cjs', relative(join(root, 'dist/esm'), file));
  mkdirSync(dirname(target), { recursive: true });
  cpSync(file, target);
}
for (const name of subpaths) {
  mkdirSync(join(root, name));
  writeFileSync(
    join(root, name, 'package.json'),
    JSON.stringify({ main: `../dist/cjs/${name}.js`, types: `../dist/cjs/${name}.d.ts` }, null, 2) + '\n',
  );
}

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else yield path;
  }
}
