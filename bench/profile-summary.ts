/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --profile <dir>`):
 * self time by function and by package/file, heaviest first.
 * `npx tsx bench/profile-summary.ts <file.cpuprofile> [top]`
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
// Idle time (servers wait between rounds) is left out of the total.
let total = 0;
for (const [id, t] of self) if (byId.get(id)!.callFrame.functionName !== '(idle)') total += t;

function where(url: string): string {
  if (url === '') return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 13).split('/').slice(0, url.slice(nm + 13).startsWith('@') ? 2 : 1).join('/');
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '').replace(/^node:/, 'node:');
}

const fnTime = new Map<string, number>();
const fileTime = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id)!;
  const name = `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  fnTime.set(name, (fnTime.get(name) ?? 0) + t);
  const w = n.callFrame.url === '' ? n.callFrame.functionName : where(n.callFrame.url);
  fileTime.set(w, (fileTime.get(w) ?? 0) + t);
}
const show = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title} (busy ${(total / 1000).toFixed(0)} ms)`);
  for (const [k, t] of [...m].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((t / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  }
};
show('self time by function', fnTime);
show('self time by file/package', fileTime);
