/** Token helpers: keys, and JWTs signed by hand so any header or claim can be crafted. */
import { createHmac, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';

/** A 48-byte HMAC secret (64 base64url characters). */
export const SECRET = randomBytes(48).toString('base64url');

/** An RSA key pair in PEM. */
export const RSA = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** Seconds since the epoch, from the (possibly faked) clock. */
export function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

/** An HS256 token over any header and payload, signed with `secret`. */
export function signHs(
  payload: Record<string, unknown>,
  secret: string | Buffer = SECRET,
  header: Record<string, unknown> = {},
  alg: 'HS256' | 'HS384' | 'HS512' = 'HS256',
): string {
  const input = `${b64url({ alg, typ: 'JWT', ...header })}.${b64url(payload)}`;
  const hash = alg === 'HS256' ? 'sha256' : alg === 'HS384' ? 'sha384' : 'sha512';
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** An RS256 token over any header and payload. */
export function signRs(
  payload: Record<string, unknown>,
  privateKey: string = RSA.privateKey,
  header: Record<string, unknown> = {},
): string {
  const input = `${b64url({ alg: 'RS256', typ: 'JWT', ...header })}.${b64url(payload)}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')}`;
}

/** A valid HS256 token for `sub`, expiring in an hour unless claims say otherwise. */
export function tokenFor(sub: unknown, claims: Record<string, unknown> = {}, secret: string | Buffer = SECRET): string {
  return signHs({ sub, iat: nowSec(), exp: nowSec() + 3600, ...claims }, secret);
}
