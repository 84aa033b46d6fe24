/**
 * Micro-benchmarks of the hot paths, with mitata's `measure` (ns per call).
 * Run by bench/run.ts in its own process: `node --import tsx --expose-gc
 * bench/micro.ts [--smoke] --json <file>`.
 */
import { createPublicKey, createSecretKey, generateKeyPairSync, randomBytes, randomUUID, verify as cryptoVerify, createHmac, timingSafeEqual } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { do_not_optimize, measure } from 'mitata';
import { als } from '../src/store/als.js';
import { mutableClaims } from '../src/auth/claims.js';
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
// What the middleware does per request on a token-cache hit: the verify, then
// the request's own copy of the claims (ctx.state.user). Flat claims, and
// claims with nested values as an OpenID provider issues them (Keycloak).
const nestedToken = jwt.sign(
  {
    sub: user, scope: 'openid email profile', email: 'ada@example.com', roles: ['user', 'editor'],
    realm_access: { roles: ['offline_access', 'uma_authorization', 'user'] },
    resource_access: { account: { roles: ['manage-account', 'view-profile'] }, api: { roles: ['read', 'write'] } },
  },
  secret, { algorithm: 'HS256', expiresIn: '2h' },
);
const flatToken = jwt.sign({ sub: user, scope: 'openid email profile', email: 'ada@example.com', azp: 'web' }, secret, { algorithm: 'HS256', expiresIn: '2h' });
await verifier.verify(nestedToken);
await verifier.verify(flatToken);
await record('claims-copy-flat', 'cache hit + state.user copy, flat claims', () =>
  do_not_optimize(mutableClaims((verifier.verify(flatToken) as { claims: Record<string, unknown> }).claims)),
);
await record('claims-copy-nested', 'cache hit + state.user copy, nested claims', () =>
  do_not_optimize(mutableClaims((verifier.verify(nestedToken) as { claims: Record<string, unknown> }).claims)),
);
await record('context-lookup', 'context lookup: getUserProvider(userUuid)', () => do_not_optimize(getUserProvider(user)));
await record('store-lookup', 'store.currentGeneration(userUuid)', () => do_not_optimize(store.currentGeneration(user)));

// The cold path (no token cache), split into what the signature check costs
// and what is not the signature: jsonwebtoken's decoding and claim checks,
// then this library's own checks (shape, subject, freezing).
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsPublic = createPublicKey(rsa.publicKey.export({ type: 'spki', format: 'pem' }));
const rsToken = jwt.sign({ sub: user }, rsa.privateKey, { algorithm: 'RS256', expiresIn: '2h' });
const [rsHead, rsBody, rsSig] = rsToken.split('.') as [string, string, string];
const rsInput = Buffer.from(`${rsHead}.${rsBody}`);
const rsSignature = Buffer.from(rsSig, 'base64url');
const rsVerifier = new TokenVerifier({ secret: rsPublic, algorithms: ['RS256'], tokenCache: false }, store.parseUserId);
const hsKey = createSecretKey(Buffer.from(secret));
const [hsHead, hsBody, hsSig] = token.split('.') as [string, string, string];
const hsInput = Buffer.from(`${hsHead}.${hsBody}`);
const hsSignature = Buffer.from(hsSig, 'base64url');
const hsVerifier = new TokenVerifier({ secret, algorithms: ['HS256'], tokenCache: false }, store.parseUserId);
await record('rs256-signature', 'RS256 signature check alone (crypto.verify)', () =>
  do_not_optimize(cryptoVerify('RSA-SHA256', rsInput, rsPublic, rsSignature)),
);
await record('rs256-jsonwebtoken', 'RS256 jsonwebtoken.verify (signature + decode + claims)', () =>
  do_not_optimize(jwt.verify(rsToken, rsPublic, { algorithms: ['RS256'], complete: true })),
);
await record('rs256-verifier', 'RS256 TokenVerifier#verify, no token cache', () => do_not_optimize(rsVerifier.verify(rsToken)));
await record('hs256-signature', 'HS256 signature check alone (HMAC + compare)', () =>
  do_not_optimize(timingSafeEqual(createHmac('sha256', hsKey).update(hsInput).digest(), hsSignature)),
);
await record('hs256-jsonwebtoken', 'HS256 jsonwebtoken.verify (signature + decode + claims)', () =>
  do_not_optimize(jwt.verify(token, hsKey, { algorithms: ['HS256'], complete: true })),
);
await record('hs256-verifier', 'HS256 TokenVerifier#verify, no token cache', () => do_not_optimize(hsVerifier.verify(token)));

let flip = 0;
await record('configure', 'configureUser({ model }, userUuid)', () =>
  configureUser({ model: (flip ^= 1) === 1 ? 'model-a' : 'model-b' }, user),
);

if (jsonFile !== undefined) writeFileSync(jsonFile, JSON.stringify(results));
await store.close();
