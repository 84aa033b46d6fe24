/** Mints demo tokens (HS256, 1 h) for the examples. */
import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';

export function generateSecret(): string {
  return randomBytes(48).toString('base64url');
}

export function mintToken(secret: string, userUuid: string, extra: Record<string, unknown> = {}, expiresIn = 3600): string {
  return jwt.sign({ ...extra, sub: userUuid }, secret, { algorithm: 'HS256', expiresIn });
}
