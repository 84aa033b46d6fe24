import { describe, expect, it } from 'vitest';
import { blockFileName, extractBlocks } from './doc-blocks.js';

describe('doc code blocks (the convention the package test applies)', () => {
  const md = [
    '# Title',
    '```ts',
    "import { userContext } from 'koa-user-context';",
    '```',
    'text',
    '```ts no-check',
    'app.use(userContext({ … }));',
    '```',
    '```ts run',
    'console.log(1);',
    '````',
    '```sh',
    'npm i koa-user-context koa',
    '```',
    '~~~typescript run no-check',
    'const x = 1;',
    '~~~',
  ].join('\n');
  const blocks = extractBlocks(md, 'docs/x.md');

  it('finds ts blocks only, with the line of their opening fence', () => {
    expect(blocks.map((b) => [b.line, b.check, b.run])).toEqual([
      [2, true, false],
      [6, false, false],
      [9, true, true],
      [15, false, false],
    ]);
    expect(blocks[0]!.code).toBe("import { userContext } from 'koa-user-context';");
    expect(blocks[2]!.code).toBe('console.log(1);');
  });

  it('names each block after its file and line', () => {
    expect(blocks.map(blockFileName)).toEqual(['docs-x-L2.ts', 'docs-x-L6.ts', 'docs-x-L9.ts', 'docs-x-L15.ts']);
  });
});
