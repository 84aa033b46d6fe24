/**
 * Shared inputs of the HTTP benchmark: an HS256 secret, an RSA key pair, the
 * users and their tokens. The parent makes them once per run and hands the
 * public parts to every server child through an environment variable, so all
 * contenders verify the very same tokens.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';

export const PROVIDERS = ['Google', 'Anthropic', 'OpenAI', 'Amazon', 'Azure'] as const;

/** What a server child needs to know. */
export interface ServerFixtures {
  /** HS256 secret as users hold it (a string). */
  hsSecret: string;
  /** RS256 public key (PEM). */
  rsPublicKey: string;
  /** The users whose contexts the server pre-configures. */
  users: string[];
}

/** What the load generator needs on top: one token per user and algorithm. */
export interface LoadFixtures extends ServerFixtures {
  hsTokens: string[];
  rsTokens: string[];
}

export const FIXTURES_ENV = 'KUC_BENCH_FIXTURES';

/** Env var of a server child: comma-separated event names given a no-op listener on `process` (bench/next-tick-state.ts). */
export const PROCESS_LISTENERS_ENV = 'KUC_BENCH_PROCESS_LISTENERS';

/**
 * Env var of a server child: `0` leaves process.nextTick's tick maps to chance (bench/next-tick-state.ts);
 * otherwise every server retains a tick object first, as examples/server.ts does (examples/tick-object.ts).
 */
export const RETAIN_TICK_ENV = 'KUC_BENCH_RETAIN_TICK';

export function makeFixtures(userCount = 100): LoadFixtures {
  const hsSecret = randomBytes(48).toString('base64url');
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsPublicKey = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const users = Array.from({ length: userCount }, () => randomUUID());
  const hsTokens = users.map((sub) => jwt.sign({ sub }, hsSecret, { algorithm: 'HS256', expiresIn: '2h' }));
  const rsTokens = users.map((sub) => jwt.sign({ sub }, privateKey, { algorithm: 'RS256', expiresIn: '2h' }));
  return { hsSecret, rsPublicKey, users, hsTokens, rsTokens };
}

/** The provider each user is configured with (deterministic, so servers agree). */
export function providerOf(index: number): string {
  return PROVIDERS[index % PROVIDERS.length]!;
}

export function readServerFixtures(): ServerFixtures {
  const raw = process.env[FIXTURES_ENV];
  if (raw === undefined) throw new Error(`${FIXTURES_ENV} is not set; start servers through bench/run.ts`);
  return JSON.parse(raw) as ServerFixtures;
}
