/**
 * Memory: streams N distinct users (default 1 000 000) through a store with
 * `max` 10 000. Every user does what a request does (open a scope, read,
 * configure, close). Reports the heap with an empty store, with the first
 * 10 000 users resident, and after all N, each after a full GC.
 * `node --import tsx --expose-gc bench/memory.ts [--users N] [--max M] --json <file>`.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { ContextStore, configureUser, getUserProvider, runAsUser, setDefaultStore } from '../src/index.js';

export interface MemoryResult {
  users: number;
  max: number;
  heapEmptyBytes: number;
  heapResidentBytes: number;
  heapAfterBytes: number;
  /** (heap with `max` contexts resident − empty heap) ÷ `max`. */
  bytesPerContext: number;
  /** Heap after all users − heap with the first `max` resident. */
  growthAfterAllBytes: number;
  evicted: number;
  seconds: number;
}

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const users = arg('--users', 1_000_000);
const max = arg('--max', 10_000);
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
function heap(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed;
}

let evicted = 0;
const store = new ContextStore({ max, sweepInterval: 0, onEvict: () => void evicted++ });
setDefaultStore(store);

async function visit(user: string, i: number): Promise<void> {
  await runAsUser(user, async () => {
    if (getUserProvider() === null) await configureUser({ provider: 'Google', model: `model-${i % 7}` });
  });
}

const started = performance.now();
const heapEmptyBytes = heap();
let i = 0;
for (; i < max; i++) await visit(randomUUID(), i);
if (store.size !== max) throw new Error(`expected ${max} resident contexts, found ${store.size}`);
const heapResidentBytes = heap();
for (; i < users; i++) await visit(randomUUID(), i);
if (store.size !== max) throw new Error(`expected ${max} resident contexts, found ${store.size}`);
const heapAfterBytes = heap();
const result: MemoryResult = {
  users,
  max,
  heapEmptyBytes,
  heapResidentBytes,
  heapAfterBytes,
  bytesPerContext: (heapResidentBytes - heapEmptyBytes) / max,
  growthAfterAllBytes: heapAfterBytes - heapResidentBytes,
  evicted,
  seconds: (performance.now() - started) / 1000,
};
const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MB`;
console.log(
  `${users} users through max ${max}: heap empty ${mb(heapEmptyBytes)}, ${max} resident ${mb(heapResidentBytes)} ` +
    `(${Math.round(result.bytesPerContext)} B/context), after all ${mb(heapAfterBytes)} ` +
    `(growth ${mb(result.growthAfterAllBytes)}), ${evicted} evicted, ${result.seconds.toFixed(1)} s`,
);
if (jsonFile !== undefined) writeFileSync(jsonFile, JSON.stringify(result));
await store.close();
