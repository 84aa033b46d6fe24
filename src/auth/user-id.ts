/**
 * What a user id may look like. The id keys every per-user structure, so it is
 * checked wherever it enters: from a token's subject claim, or passed to
 * `runAsUser()` and the helpers explicitly.
 *
 * @module
 */
import { InvalidUserIdError } from '../errors.js';

/** Any RFC 9562 UUID (any version), case-insensitive. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Longest user id accepted, whatever the pattern or validator says. */
export const MAX_USER_ID_LENGTH = 256;

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf']);

/**
 * How user ids are checked: a RegExp they must match, or a function that
 * returns `true` for a valid id. The default accepts UUIDs and lower-cases
 * them, so `ABC…` and `abc…` are the same user.
 */
export type UserIdPolicy = RegExp | ((id: string) => boolean);

/** Returns a function that returns the normalised id, or throws `InvalidUserIdError`. */
export function createUserIdParser(policy: UserIdPolicy | undefined): (value: unknown) => string {
  if (policy !== undefined && !(policy instanceof RegExp) && typeof policy !== 'function') {
    throw new TypeError('options.userId must be a RegExp or a function (id: string) => boolean');
  }
  const test = policy === undefined ? (id: string) => UUID_PATTERN.test(id)
    : policy instanceof RegExp ? (id: string) => { policy.lastIndex = 0; return policy.test(id); }
    : policy;
  const normalise = policy === undefined;
  return function parseUserId(value: unknown): string {
    if (typeof value !== 'string') {
      throw new InvalidUserIdError(
        `A user id must be a string, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}.`,
      );
    }
    if (value.length === 0 || value.length > MAX_USER_ID_LENGTH) {
      throw new InvalidUserIdError(
        `A user id must be 1 to ${MAX_USER_ID_LENGTH} characters long, got ${value.length}.`,
      );
    }
    if (FORBIDDEN.has(value) || !test(value)) {
      throw new InvalidUserIdError(
        policy === undefined
          ? 'A user id must be a UUID such as "0b7f8c1e-2d4a-4c6b-9e1f-3a5d7c9b2e4f" (set the store\'s userId option to accept other shapes).'
          : 'The user id does not match the store\'s userId policy.',
      );
    }
    return normalise ? value.toLowerCase() : value;
  };
}
