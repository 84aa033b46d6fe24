/**
 * Micro-benchmarks of the hot paths, with mitata's `measure` (ns per call).
 * Run by bench/run.ts in its own process: `node --import tsx --expose-gc
 * bench/micro.ts [--smoke] --json <file>`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { do_not_optimize, measure } from 'mitata';
import { als } from '../src/store/als.js';
import {
  ContextStore,
  TokenVerifier,
  configureUser,
  getUserProvider,
  runAsUser,
  setDefaultStore,
} from '../src/index.js';

export interface MicroResult {
  id: string;
  label: string;
  /** Mean ns per call (mitata batches calls; each sample is one batch's ns per call). */
  avgNs: number;
  minNs: number;
  p50Ns: number;
  p99Ns: number;
}

const smoke = process.argv.includes('--smoke');
const jsonAt = process.argv.indexOf('--json');
const jsonFile = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;
const opts = smoke ? { min_cpu_time: 5e6, max_samples: 200 } : { min_cpu_time: 500e6 };

const store = new ContextStore({ max: 10_000, sweepInterval: 0 });
setDefaultStore(store);
const users = Array.from({ length: 100 }, () => randomUUID());
for (const user of users) await configureUser({ provider: 'Google', model: 'bench-model' }, user);
const user = users[0]!;

const secret = randomBytes(48).toString('base64url');
const verifier = new TokenVerifier({ secret, algorithms: ['HS256'] }, store.parseUserId);
const token = jwt.sign({ sub: user }, secret, { algorithm: 'HS256', expiresIn: '2h' });
await verifier.verify(token);
if (verifier.cacheSize !== 1) throw new Error('the token was not cached');

const results: MicroResult[] = [];
async function record(id: string, label: string, fn: () => unknown): Promise<void> {
  const stats = await measure(fn, opts);
  results.push({ id, label, avgNs: stats.avg, minNs: stats.min, p50Ns: stats.p50, p99Ns: stats.p99 });
  console.log(`${label.padEnd(48)} mean ${stats.avg.toFixed(1).padStart(8)} ns, median ${stats.p50.toFixed(1).padStart(8)} ns`);
}

// Reads inside a scope: measured from within runAsUser, across mitata's awaits.
await runAsUser(user, async () => {
  if (getUserProvider() !== 'Google') throw new Error('getUserProvider() did not answer for the scope');
  await record('als-getstore', 'AsyncLocalStorage#getStore() (floor)', () => do_not_optimize(als.getStore()));
  await record('get-user-provider', 'getUserProvider() inside a scope', () => do_not_optimize(getUserProvider()));
});
await record('run-as-user', 'runAsUser(user, fn) (sync fn)', () => runAsUser(user, () => 1));
await record('token-cache-hit', 'TokenVerifier#verify(), token-cache hit', () => do_not_optimize(verifier.verify(token)));
await record('context-lookup', 'context lookup: getUserProvider(userUuid)', () => do_not_optimize(getUserProvider(user)));
await record('store-lookup', 'store.currentGeneration(userUuid)', () => do_not_optimize(store.currentGeneration(user)));
let flip = 0;
await record('configure', 'configureUser({ model }, userUuid)', () =>
  configureUser({ model: (flip ^= 1) === 1 ? 'model-a' : 'model-b' }, user),
);

if (jsonFile !== undefined) writeFileSync(jsonFile, JSON.stringify(results));
await store.close();
