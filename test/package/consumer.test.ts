/**
 * The package as a registry user installs it: `npm pack` (which builds by
 * itself through `prepack`), then the tarball installed into fresh consumer
 * projects in a temp folder outside the repository:
 *
 * - `full`: an existing project on the latest koa, ai, @ai-sdk/openai,
 *   ioredis, MCP SDK, jwks-rsa and prom-client (plus @types/koa and
 *   @types/node) that then installs the tarball with a plain `npm i`: no
 *   ERESOLVE, no `--legacy-peer-deps`. An ESM
 *   TypeScript app (module nodenext) type-checks and runs; the same sources
 *   type-check with moduleResolution bundler; a CommonJS TypeScript app
 *   (`cjs/`, "type": "commonjs", so every import compiles to a require())
 *   type-checks and runs; the type tests (`*.test-d.ts`) compile against the
 *   built declarations; the README/docs code blocks type-check (and run).
 * - `koa2`: koa@2 and NO optional peer: the root loads, in CJS and ESM, and
 *   each subpath names the peer it lacks.
 * - `previous`: the previous peer majors (ai 6, @ai-sdk/openai 3, ioredis 5,
 *   jwks-rsa 3), installed with the tarball by a plain `npm i`: the app and
 *   the `koa-user-context/ai` app type-check and run.
 *
 * The `koa-user-context/ai` app runs in `full` (AI SDK 7) and `previous` (AI
 * SDK 6) against the local wire server (examples/providers/wire-server.ts).
 *
 * Plus publint and attw on the tarball. Downloads come from the shared npm
 * cache (`--prefer-offline`), so a warm run takes well under a minute.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 180_000 });
import { checkBlocks, extractBlocks, repoDocBlocks } from './doc-blocks.js';
import { startWireServer, type WireServer } from '../../examples/providers/wire-server.js';

const repo = join(import.meta.dirname, '..', '..');
const sources = join(import.meta.dirname, 'consumer');
const bin = (name: string): string => join(repo, 'node_modules', '.bin', name);
const TSC = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
const versionOf = (name: string): string =>
  (JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** The child's environment without npm's lifecycle variables (`npm test` sets them). */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: readonly string[], cwd: string, timeout = 180_000, extraEnv: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...env, ...extraEnv }, timeout, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr: stderr + (error !== null && code === null ? String(error) : '') });
    });
  });
}
/** Runs and asserts exit 0, showing the output otherwise. */
async function ok(cmd: string, args: readonly string[], cwd: string, timeout?: number, extraEnv?: Record<string, string>): Promise<string> {
  const res = await run(cmd, args, cwd, timeout, extraEnv);
  expect(res.code, `${cmd} ${args.join(' ')} in ${cwd}\n${res.stdout}\n${res.stderr}`).toBe(0);
  return res.stdout;
}
const tsc = (project: string, cwd: string): Promise<Result> => run(process.execPath, [TSC, '-p', project], cwd);
function expectCompiled(res: Result): void {
  expect(res.code, `tsc failed:\n${res.stdout}\n${res.stderr}`).toBe(0);
}
const lastJsonLine = <T>(stdout: string): T => JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
const writeJson = (file: string, value: unknown): void => writeFileSync(file, JSON.stringify(value, null, 2) + '\n');

const OPTIONAL_PEERS = ['ioredis', 'jwks-rsa', 'prom-client', '@modelcontextprotocol/sdk', 'ai', 'rate-limiter-flexible'] as const;
const DOC_LIBRARIES = [
  'pino', '@ai-sdk/google',
  // docs/agents-frameworks.md
  '@langchain/core', '@langchain/openai', '@langchain/mcp-adapters', '@langchain/langgraph', 'langchain', '@openai/agents', 'zod',
] as const;
/** What an existing agent project has, at their latest versions, before it adds this package. */
const LATEST = ['koa', 'ai', '@ai-sdk/openai', 'ioredis', '@modelcontextprotocol/sdk', 'jwks-rsa', 'prom-client'] as const;
/** The previous major of each peer that has one, still in the peer ranges. */
const PREVIOUS = ['koa@3', 'ai@6', '@ai-sdk/openai@3', 'ioredis@5', 'jwks-rsa@3', 'prom-client@15', '@modelcontextprotocol/sdk'] as const;
/** npm's words for a peer conflict it could not (or only forcibly) resolve. */
const PEER_CONFLICT = /ERESOLVE|Conflicting peer dependency|overriding peer dependency|legacy-peer-deps/i;
const majorOf = (version: string): number => Number(/\d+/.exec(version)![0]);
const STRICT = {
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  // As consumers compile: third-party declarations (the MCP SDK wants DOM
  // types, @types/koa 3 trips on content-disposition) are not ours to check;
  // our own declarations are checked on their own below.
  skipLibCheck: true,
  esModuleInterop: true,
  target: 'ES2022',
  lib: ['ES2023'],
  types: ['node'],
};

let tmp: string;
let tarball: string;
let full: string;
let koa2: string;
let previous: string;
let wire: WireServer;
/** The plain `npm i <tarball>` into the existing latest-peers project. */
let addedToLatest: Result;
/** The consumers' tsc runs, started together once everything is installed. */
let compiled: Record<'esm' | 'bundler' | 'cjs' | 'unregistered' | 'ai' | 'previous', Promise<Result>>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'kuc-pkg-'));
  // `npm pack` runs `prepack` (the build) by itself.
  await ok('npm', ['pack', '--pack-destination', tmp], repo, 240_000);
  const packed = readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
  expect(packed).toHaveLength(1);
  tarball = join(tmp, packed[0]!);

  full = join(tmp, 'full');
  mkdirSync(join(full, 'src'), { recursive: true });
  mkdirSync(join(full, 'cjs', 'src'), { recursive: true });
  writeJson(join(full, 'package.json'), { name: 'consumer-full', private: true, type: 'module' });
  for (const file of ['app.ts', 'ai-app.ts', 'dual.ts', 'types.test-d.ts', 'unregistered.test-d.ts']) {
    cpSync(join(sources, file), join(full, 'src', file));
  }
  cpSync(join(sources, 'root-only.cjs'), join(full, 'root-only.cjs'));
  const nodenext = { ...STRICT, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'dist' };
  writeJson(join(full, 'tsconfig.json'), {
    compilerOptions: nodenext,
    files: ['src/app.ts', 'src/dual.ts', 'src/types.test-d.ts'],
  });
  // Its own program: it registers UserLlm as the client type, the type tests register another.
  writeJson(join(full, 'tsconfig.ai.json'), { compilerOptions: nodenext, files: ['src/ai-app.ts'] });
  writeJson(join(full, 'tsconfig.bundler.json'), {
    compilerOptions: { ...STRICT, module: 'preserve', moduleResolution: 'bundler', noEmit: true },
    files: ['src/app.ts', 'src/types.test-d.ts'],
  });
  writeJson(join(full, 'tsconfig.unregistered.json'), {
    compilerOptions: { ...nodenext, noEmit: true },
    files: ['src/unregistered.test-d.ts'],
  });
  writeJson(join(full, 'cjs', 'package.json'), { name: 'consumer-cjs', private: true, type: 'commonjs' });
  cpSync(join(sources, 'app.ts'), join(full, 'cjs', 'src', 'app.ts'));
  cpSync(join(sources, 'types.test-d.ts'), join(full, 'cjs', 'src', 'types.test-d.ts'));
  writeJson(join(full, 'cjs', 'tsconfig.json'), { compilerOptions: nodenext, files: ['src/app.ts', 'src/types.test-d.ts'] });

  koa2 = join(tmp, 'koa2');
  mkdirSync(koa2);
  writeJson(join(koa2, 'package.json'), { name: 'consumer-koa2', private: true });
  cpSync(join(sources, 'koa2.cjs'), join(koa2, 'koa2.cjs'));
  cpSync(join(sources, 'koa2.mjs'), join(koa2, 'koa2.mjs'));

  previous = join(tmp, 'previous');
  mkdirSync(join(previous, 'src'), { recursive: true });
  writeJson(join(previous, 'package.json'), { name: 'consumer-previous', private: true, type: 'module' });
  for (const file of ['app.ts', 'ai-app.ts']) cpSync(join(sources, file), join(previous, 'src', file));
  writeJson(join(previous, 'tsconfig.json'), { compilerOptions: nodenext, files: ['src/app.ts', 'src/ai-app.ts'] });

  const install = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--loglevel=error'];
  // The existing project first (latest of each, fresh from the registry),
  // then the package added to it as a user would: a plain `npm i`.
  const existing = ok(
    'npm',
    [
      'install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error',
      ...LATEST.map((name) => `${name}@latest`),
      '@types/koa@3',
      `@types/node@${versionOf('@types/node')}`,
      // Every other optional peer, so each subpath's declarations resolve.
      ...OPTIONAL_PEERS.filter((name) => !(LATEST as readonly string[]).includes(name)).map((name) => `${name}@${versionOf(name)}`),
      // Libraries the docs' examples use next to ours (not peers).
      ...DOC_LIBRARIES.map((name) => `${name}@${versionOf(name)}`),
    ],
    full,
    240_000,
  ).then(async () => {
    addedToLatest = await run('npm', ['i', '--no-audit', '--no-fund', tarball], full, 240_000);
  });
  await Promise.all([
    existing,
    ok('npm', [...install, tarball, 'koa@2'], koa2, 240_000),
    ok('npm', ['i', '--no-audit', '--no-fund', '--prefer-offline', tarball, '@types/koa@3', '@types/node@22', ...PREVIOUS], previous, 240_000),
  ]);
  wire = await startWireServer({ tokenDelayMs: 0 });
  // One tsc at a time (the machine has 2 cores and other test files run
  // alongside), started now so the tests below overlap with them.
  const esm = tsc('tsconfig.json', full);
  const cjs = esm.then(() => tsc('tsconfig.json', join(full, 'cjs')));
  const bundler = cjs.then(() => tsc('tsconfig.bundler.json', full));
  const unregistered = bundler.then(() => tsc('tsconfig.unregistered.json', full));
  const ai = unregistered.then(() => tsc('tsconfig.ai.json', full));
  const previousEsm = ai.then(() => tsc('tsconfig.json', previous));
  compiled = { esm, cjs, bundler, unregistered, ai, previous: previousEsm };
}, 480_000);

afterAll(async () => {
  await wire?.close();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
}, 120_000);

describe('the packed tarball', () => {
  it('contains the build and no tests or sources', () => {
    const manifest = (dir: string): { version: string } => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(manifest(join(full, 'node_modules', 'koa-user-context')).version).toBe(manifest(repo).version);
    const installed = join(full, 'node_modules', 'koa-user-context');
    expect(readdirSync(installed).sort()).toEqual(['LICENSE', 'README.md', 'ai', 'dist', 'jwks', 'mcp', 'metrics', 'package.json', 'redis', 'usage']);
    expect(readdirSync(join(installed, 'dist')).sort()).toEqual(['cjs', 'esm']);
    expect(existsSync(join(installed, 'dist', 'esm', 'index.d.ts'))).toBe(true);
    expect(existsSync(join(installed, 'dist', 'cjs', 'index.d.ts'))).toBe(true);
  });

  it('publint: all good (strict, so warnings fail too)', async () => {
    const out = await ok(bin('publint'), ['run', '--strict', tarball], tmp);
    expect(out).toContain('All good!');
  });

  it('attw: no problem in any resolution mode (node10, node16 CJS and ESM, bundler), no rule ignored', async () => {
    const res = await run(bin('attw'), [tarball, '--format', 'json'], tmp);
    const report = JSON.parse(res.stdout) as { analysis: { problems: unknown[]; entrypoints: Record<string, unknown> } };
    expect(report.analysis.problems).toEqual([]);
    expect(Object.keys(report.analysis.entrypoints).sort()).toEqual(
      ['.', './ai', './jwks', './mcp', './metrics', './package.json', './redis', './usage'].sort(),
    );
    expect(res.code).toBe(0);
  });
});

describe('an existing project on the latest koa, ai, @ai-sdk/openai, ioredis, MCP SDK, jwks-rsa and prom-client', () => {
  it('installs the tarball with a plain npm i: no ERESOLVE, no --legacy-peer-deps, every peer at least the major this repository tests', () => {
    const output = `${addedToLatest.stdout}\n${addedToLatest.stderr}`;
    expect(addedToLatest.code, output).toBe(0);
    expect(output).not.toMatch(PEER_CONFLICT);
    const devDependencies = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies;
    for (const name of LATEST) {
      const installed = (JSON.parse(readFileSync(join(full, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
      expect(majorOf(installed), `${name}@${installed}`).toBeGreaterThanOrEqual(majorOf(devDependencies[name]!));
    }
  });
});

describe('koa-user-context/ai on the current and the previous AI SDK', () => {
  it('AI SDK 7 (latest, with @ai-sdk/openai 4): each user\'s generated and streamed answers carry their own key and model', async () => {
    expectCompiled(await compiled.ai);
    expectOwnAnswers(lastJsonLine<AiRun>(await ok(process.execPath, ['dist/ai-app.js'], full, undefined, { WIRE_URL: wire.url })), 7);
  });

  it('AI SDK 6 (with @ai-sdk/openai 3, ioredis 5, jwks-rsa 3): installed with a plain npm i, the app and the AI app type-check and run', async () => {
    expectCompiled(await compiled.previous);
    expectTwoUsers(lastJsonLine<AppRun>(await ok(process.execPath, ['dist/app.js'], previous)));
    expectOwnAnswers(lastJsonLine<AiRun>(await ok(process.execPath, ['dist/ai-app.js'], previous, undefined, { WIRE_URL: wire.url })), 6);
    const ioredis = JSON.parse(readFileSync(join(previous, 'node_modules', 'ioredis', 'package.json'), 'utf8')) as { version: string };
    expect(majorOf(ioredis.version)).toBe(5);
  });
});

describe('the declarations of the tarball', () => {
  it('compile without error, every import resolved (dist/esm and dist/cjs, full lib check of our files only)', async () => {
    await Promise.all(Object.values(compiled)); // let the consumers' tsc runs have the CPU first
    const ts = await import('typescript');
    const installed = join(full, 'node_modules', 'koa-user-context', 'dist');
    const ours = readdirSync(installed, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.d.ts'))
      .map((f) => join(installed, f));
    expect(ours.length).toBeGreaterThan(40);
    const program = ts.createProgram({
      rootNames: ours,
      options: { strict: true, skipLibCheck: false, noEmit: true, module: ts.ModuleKind.NodeNext, target: ts.ScriptTarget.ES2022, types: ['node'] },
    });
    const errors = ours.flatMap((file) => {
      const source = program.getSourceFile(file)!;
      return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)].map(
        (d) => `${file.slice(installed.length + 1)}: TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`,
      );
    });
    expect(errors, errors.join('\n')).toEqual([]);
  });
});

describe('ESM TypeScript consumer (module nodenext, koa@3)', () => {
  it('type-checks the app and the type tests against the built declarations, and runs the app', async () => {
    expectCompiled(await compiled.esm);
    const out = lastJsonLine<AppRun>(await ok(process.execPath, ['dist/app.js'], full));
    expectTwoUsers(out);
  });

  it('shares one scope between the ESM and the CommonJS copy of the package', async () => {
    expectCompiled(await compiled.esm);
    const out = lastJsonLine<{
      cjsResolved: string;
      distinctCopies: boolean;
      a: string;
      b: string;
      esmScopeReadByCjs: { uuid: string; model: string };
      cjsScopeReadByEsm: { uuid: string; model: string };
    }>(await ok(process.execPath, ['dist/dual.js'], full));
    expect(out.cjsResolved).toMatch(/koa-user-context[/\\]dist[/\\]cjs[/\\]index\.js$/);
    expect(out.distinctCopies).toBe(true);
    expect(out.esmScopeReadByCjs).toEqual({ uuid: out.a, model: 'set-with-esm' });
    expect(out.cjsScopeReadByEsm).toEqual({ uuid: out.b, model: 'set-with-cjs' });
  });

  it('type-checks an app that registers no client types (getters return unknown)', async () => {
    expectCompiled(await compiled.unregistered);
  });
});

describe('TypeScript consumer with moduleResolution bundler', () => {
  it('type-checks the app and the type tests', async () => {
    expectCompiled(await compiled.bundler);
  });
});

describe('CommonJS consumer (require)', () => {
  it('type-checks against the require-condition declarations, compiles to require() of the root and every subpath, and runs', async () => {
    const cjs = join(full, 'cjs');
    expectCompiled(await compiled.cjs);
    const js = readFileSync(join(cjs, 'dist', 'app.js'), 'utf8');
    for (const entry of ['koa-user-context', 'koa-user-context/jwks', 'koa-user-context/mcp', 'koa-user-context/metrics', 'koa-user-context/redis']) {
      expect(js).toContain(`require("${entry}")`);
    }
    expect(js).not.toMatch(/\bimport\s*\(/);
    const out = lastJsonLine<AppRun>(await ok(process.execPath, ['dist/app.js'], cjs));
    expectTwoUsers(out);
  });

  it('the root entry loads lru-cache, jsonwebtoken, ms and koa-unless, and none of the optional peers (though installed)', async () => {
    const out = lastJsonLine<{ loaded: string[]; dependencies: string[] }>(await ok(process.execPath, ['root-only.cjs'], full));
    expect(out).toEqual({ loaded: [], dependencies: ['lru-cache', 'jsonwebtoken', 'ms', 'koa-unless'] });
  });
});

describe('Koa 2 consumer without any optional peer', () => {
  it('installs no optional peer', () => {
    for (const name of OPTIONAL_PEERS) expect(existsSync(join(koa2, 'node_modules', name)), name).toBe(false);
    const koa = JSON.parse(readFileSync(join(koa2, 'node_modules', 'koa', 'package.json'), 'utf8')) as { version: string };
    expect(koa.version).toMatch(/^2\./);
    // koa is a peer: one copy, the app's own.
    expect(existsSync(join(koa2, 'node_modules', 'koa-user-context', 'node_modules', 'koa'))).toBe(false);
  });

  it('require(): the middleware runs on Koa 2; each subpath names its missing peer', async () => {
    const out = lastJsonLine<{
      uuid: string;
      read: unknown;
      anonymous: { status: number; body: { error: string } };
      loadedOptional: string[];
      subpathErrors: Record<string, unknown>;
      koa: string;
    }>(await ok(process.execPath, ['koa2.cjs'], koa2));
    expect(out.koa).toMatch(/^2\./);
    expect(out.read).toEqual({ user: out.uuid, model: 'm-koa2' });
    expect(out.anonymous.status).toBe(401);
    expect(out.anonymous.body.error).toEqual(expect.any(String));
    expect(out.loadedOptional).toEqual([]);
    expect(out.subpathErrors).toEqual({
      redis: { code: 'MODULE_NOT_FOUND', namesLib: true },
      jwks: { code: 'MODULE_NOT_FOUND', namesLib: true },
      metrics: { code: 'MODULE_NOT_FOUND', namesLib: true },
      mcp: { code: 'MODULE_NOT_FOUND', namesLib: true },
      ai: { code: 'MODULE_NOT_FOUND', namesLib: true },
      usage: { code: 'MODULE_NOT_FOUND', namesLib: true },
    });
  });

  it('import: the root loads; each subpath rejects naming its missing peer', async () => {
    const out = lastJsonLine<{ rootExports: number; userContext: string; subpathErrors: Record<string, unknown> }>(
      await ok(process.execPath, ['koa2.mjs'], koa2),
    );
    expect(out.userContext).toBe('function');
    expect(out.rootExports).toBeGreaterThan(40);
    expect(out.subpathErrors).toEqual({
      redis: { code: 'ERR_MODULE_NOT_FOUND', namesLib: true },
      jwks: { code: 'ERR_MODULE_NOT_FOUND', namesLib: true },
      metrics: { code: 'ERR_MODULE_NOT_FOUND', namesLib: true },
      mcp: { code: 'ERR_MODULE_NOT_FOUND', namesLib: true },
      ai: { code: 'ERR_MODULE_NOT_FOUND', namesLib: true },
      usage: { code: 'ERR_MODULE_NOT_FOUND', namesLib: true },
    });
  });
});

describe('README.md and docs/*.md code blocks, against the installed tarball', () => {
  it('every ```ts block type-checks; every ```ts run block exits 0 by itself', async () => {
    const blocks = repoDocBlocks(repo);
    expect(blocks.filter((b) => b.check).length).toBeGreaterThan(0);
    const failures = await checkBlocks(blocks, full);
    expect(failures, failures.join('\n\n')).toEqual([]);
  });

  it('the checker reports a wrong block at its Markdown line, runs `ts run` blocks, and skips `ts no-check`', async () => {
    const md = readFileSync(join(sources, 'blocks.md'), 'utf8');
    const failures = await checkBlocks(extractBlocks(md, 'blocks.md'), full, 8_000);
    expect(failures).toHaveLength(3);
    expect(failures[0]).toMatch(/^blocks\.md:13: TS2322: Type 'number' is not assignable to type 'string'/);
    expect(failures[1]).toMatch(/^blocks\.md:26: `ts run` block exited 3\n.*block-failed/s);
    expect(failures[2]).toMatch(/^blocks\.md:31: `ts run` block exited by timeout/);
    // The passing `ts run` block really ran: it wrote its marker.
    expect(readFileSync(join(full, 'ran-L16.txt'), 'utf8')).toBe('m-docs');
  });
});

interface AppRun {
  users: { uuid: string; provider: string; model: string }[];
  configured: { status: number; body: unknown }[];
  reads: { status: number; body: unknown }[];
  anonymous: { status: number; body: { error: string } };
}
function expectTwoUsers(out: AppRun): void {
  expect(out.users).toHaveLength(2);
  out.users.forEach((u, i) => {
    expect(out.configured[i]).toEqual({ status: 200, body: { provider: u.provider, model: u.model } });
    // 10 interleaved reads per user, in users order: each sees only its own choice.
    for (const read of out.reads.slice(i * 10, i * 10 + 10)) {
      expect(read).toEqual({ status: 200, body: { provider: u.provider, model: u.model } });
    }
  });
  expect(out.anonymous.status).toBe(401);
  expect(out.anonymous.body.error).toEqual(expect.any(String));
}
interface AiRun {
  ai: string;
  answers: { expected: { key: string; model: string }; text: string; streamed: string }[];
}
function expectOwnAnswers(out: AiRun, aiMajor: number): void {
  expect(majorOf(out.ai)).toBe(aiMajor);
  expect(out.answers).toHaveLength(4);
  for (const { expected, text, streamed } of out.answers) {
    for (const answer of [text, streamed]) expect(answer).toContain(`[openai/${expected.model} key:${expected.key}]`);
  }
}
