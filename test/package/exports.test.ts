/**
 * The package's entries: every `src/<name>.ts` (other than the internal
 * top-level modules) is an entry with an `exports` subpath, and every subpath
 * is backed by a source file, so a new entry cannot be forgotten (or a stale
 * one kept). Also the shape each exports entry must have.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  files: string[];
  main: string;
  types: string;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  devDependencies: Record<string, string>;
};
/**
 * Top-level modules of src/ that are shared code, not entries. A new top-level
 * file is either an entry (add it to package.json exports and files) or
 * belongs here.
 */
const INTERNAL = new Set(['brand', 'errors', 'options', 'warn']);

const entries = readdirSync(join(root, 'src'), { withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
  .map((e) => e.name.slice(0, -3))
  .filter((name) => !INTERNAL.has(name))
  .sort();
const subpathOf = (entry: string): string => (entry === 'index' ? '.' : `./${entry}`);

describe('package.json exports ↔ src entries', () => {
  it('has one exports subpath per entry file, plus ./package.json, and nothing else', () => {
    expect(entries).toContain('index');
    expect(Object.keys(pkg.exports).sort()).toEqual([...entries.map(subpathOf), './package.json'].sort());
    expect(pkg.exports['./package.json']).toBe('./package.json');
  });

  it.each(entries)('%s: import and require conditions, each with types first', (entry) => {
    expect(pkg.exports[subpathOf(entry)]).toStrictEqual({
      import: { types: `./dist/esm/${entry}.d.ts`, default: `./dist/esm/${entry}.js` },
      require: { types: `./dist/cjs/${entry}.d.ts`, default: `./dist/cjs/${entry}.js` },
    });
    for (const condition of Object.values(pkg.exports[subpathOf(entry)] as Record<string, object>)) {
      expect(Object.keys(condition)[0]).toBe('types');
    }
  });

  it('has a LICENSE (MIT), a repository and keywords', () => {
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} koa-user-context contributors\n/);
    const manifest = pkg as unknown as { license: string; repository: { url: string }; keywords: string[] };
    expect(manifest.license).toBe('MIT');
    expect(manifest.repository.url).toMatch(/^git\+https:\/\//);
    expect(manifest.keywords).toContain('koa');
  });

  it('ships dist plus a node10 stub folder per subpath, and nothing else', () => {
    expect([...pkg.files].sort()).toEqual(['dist', ...entries.filter((e) => e !== 'index')].sort());
    expect(pkg.main).toBe('./dist/cjs/index.js');
    expect(pkg.types).toBe('./dist/cjs/index.d.ts');
  });
});

describe('package.json dependencies', () => {
  const OPTIONAL_PEERS = [
    '@modelcontextprotocol/sdk', '@types/koa', 'ioredis', 'jwks-rsa', 'prom-client',
    // koa-user-context/usage: the rate windows
    'rate-limiter-flexible',
    // koa-user-context/ai: the AI SDK and the provider packages an app passes in
    'ai', '@ai-sdk/openai', '@ai-sdk/anthropic', '@ai-sdk/google', '@ai-sdk/openai-compatible', '@ai-sdk/azure', '@ai-sdk/amazon-bedrock',
  ];

  it('depends only on what the root entry loads (and the types its declarations use)', () => {
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['@types/jsonwebtoken', 'jsonwebtoken', 'koa-unless', 'lru-cache', 'ms']);
  });

  it('takes koa as a peer and the subpaths’ libraries as optional peers, all also installed for our tests', () => {
    expect(Object.keys(pkg.peerDependencies).sort()).toEqual([...OPTIONAL_PEERS, 'koa'].sort());
    expect(pkg.peerDependencies['koa']).toBe('^2.13.0 || ^3.0.0');
    expect(pkg.peerDependenciesMeta['koa']?.optional).toBeUndefined();
    for (const name of OPTIONAL_PEERS) {
      expect(pkg.peerDependenciesMeta[name]?.optional, name).toBe(true);
      expect(pkg.devDependencies[name], name).toBeDefined();
    }
  });
});
