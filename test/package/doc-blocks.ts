/**
 * Code blocks of README.md and docs/*.md, by the project's convention:
 *
 * - every ```ts (or ```typescript) block is type-checked against the installed
 *   tarball, as its own module in an ESM consumer (module nodenext), unless
 *   its info string says `no-check` (```ts no-check: a fragment);
 * - a block whose info string also says `run` (```ts run) is executed too, and
 *   must exit 0 by itself within the timeout.
 *
 * Other languages (sh, http, json…) are not checked.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export interface DocBlock {
  /** Path of the Markdown file, relative to the repository root. */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly check: boolean;
  readonly run: boolean;
  readonly code: string;
}

const OPEN = /^ {0,3}(`{3,}|~{3,})\s*([^`]*)$/;

/** The TypeScript blocks of one Markdown text. */
export function extractBlocks(markdown: string, file: string): DocBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN.exec(lines[i]!);
    if (open === null) continue;
    const fence = open[1]!;
    const words = open[2]!.trim().split(/\s+/).filter(Boolean);
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trimStart().startsWith(fence[0]!.repeat(fence.length)) && line.trim().replace(/[`~]/g, '') === '') break;
      body.push(line);
    }
    const lang = words[0]?.toLowerCase();
    if (lang !== 'ts' && lang !== 'typescript') continue;
    const check = !words.includes('no-check');
    blocks.push({ file, line: start + 1, check, run: check && words.includes('run'), code: body.join('\n') });
  }
  return blocks;
}

/** The TypeScript blocks of README.md and docs/*.md under `root`. */
export function repoDocBlocks(root: string): DocBlock[] {
  const files = ['README.md'];
  try {
    for (const name of readdirSync(join(root, 'docs')).sort()) if (name.endsWith('.md')) files.push(`docs/${name}`);
  } catch {
    // no docs/ folder
  }
  return files.flatMap((file) => extractBlocks(readFileSync(join(root, file), 'utf8'), file));
}

/** A file name for a block, unique and readable: `README-L111.ts`. */
export function blockFileName(block: DocBlock): string {
  return `${block.file.replace(/\.md$/, '').replace(/[^A-Za-z0-9]+/g, '-')}-L${block.line}.ts`;
}

/**
 * Type-checks (and runs) `blocks` in the consumer project `consumer`, where
 * the tarball is installed: each block is written to `consumer/docs/` as a
 * module of its own and compiled with module nodenext. Blocks that augment a
 * module (`declare module`) get a program each, since an augmentation is
 * program-wide; the others share one program. Returns one message per
 * failure, located at its Markdown file and line.
 */
export async function checkBlocks(blocks: readonly DocBlock[], consumer: string, runTimeout = 30_000): Promise<string[]> {
  const dir = join(consumer, 'docs');
  const outDir = join(consumer, 'docs-out');
  mkdirSync(dir, { recursive: true });
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    strict: true,
    skipLibCheck: true,
    esModuleInterop: true,
    outDir,
    rootDir: dir,
  };
  const host = cachedHost(options, dir);
  const checked = blocks.filter((b) => b.check);
  const fileOf = new Map(checked.map((b) => [join(dir, blockFileName(b)), b]));
  for (const [file, block] of fileOf) writeFileSync(file, `${block.code}\nexport {};\n`);
  const augmenting = checked.filter((b) => /^\s*declare\s+module\s/m.test(b.code));
  const groups = [checked.filter((b) => !augmenting.includes(b)), ...augmenting.map((b) => [b])].filter((g) => g.length > 0);
  const failures: string[] = [];
  const runnable: DocBlock[] = [];
  for (const group of groups) {
    const program = ts.createProgram({ rootNames: group.map((b) => join(dir, blockFileName(b))), options, host });
    const failed = new Set<DocBlock>();
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const block = d.file === undefined ? undefined : fileOf.get(d.file.fileName);
      if (block !== undefined) failed.add(block);
      failures.push(describeDiagnostic(d, block ?? group[0]!));
    }
    for (const block of group) {
      if (!block.run || failed.has(block)) continue;
      const result = program.emit(program.getSourceFile(join(dir, blockFileName(block))));
      if (!result.emitSkipped) runnable.push(block);
    }
  }
  const runs = await Promise.all(
    runnable.map((block) => runNode(join(outDir, blockFileName(block).replace(/\.ts$/, '.js')), consumer, runTimeout)),
  );
  runs.forEach((res, i) => {
    const block = runnable[i]!;
    if (res.code !== 0) failures.push(`${block.file}:${block.line}: \`ts run\` block exited ${res.code ?? 'by timeout'}\n${res.output}`);
  });
  return failures;
}

function runNode(file: string, cwd: string, timeout: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { cwd, timeout }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, output: stdout + stderr });
    });
  });
}

/** A compiler host that parses library declarations once for all programs. */
function cachedHost(options: ts.CompilerOptions, blocksDir: string): ts.CompilerHost {
  const host = ts.createCompilerHost(options);
  const cache = new Map<string, ts.SourceFile | undefined>();
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    if (fileName.startsWith(blocksDir)) return getSourceFile(fileName, languageVersion, onError, shouldCreate);
    if (!cache.has(fileName)) cache.set(fileName, getSourceFile(fileName, languageVersion, onError, shouldCreate));
    return cache.get(fileName);
  };
  return host;
}

function describeDiagnostic(d: ts.Diagnostic, block: DocBlock): string {
  const message = `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  if (d.file === undefined || d.start === undefined) return `${block.file}:${block.line}: ${message}`;
  if (!d.file.fileName.endsWith(blockFileName(block))) return `${block.file}:${block.line}: in ${d.file.fileName}: ${message}`;
  // The block's first line is the line after its opening fence.
  const { line } = d.file.getLineAndCharacterOfPosition(d.start);
  return `${block.file}:${block.line + 1 + line}: ${message}`;
}
