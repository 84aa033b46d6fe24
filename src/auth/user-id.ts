/**
 * What a user id may look like. The id keys every per-user structure, so it is
 * checked wherever it enters: from a token's subject claim, or passed to
 * `runAsUser()` and the helpers explicitly.
 *
 * @module
 */
import { InvalidSubjectError, InvalidUserIdError, UserContextError } from '../errors.js';

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

/**
 * The user id in `claims[subjectClaim]`, normalised by `parseUserId`; a
 * number is accepted (as its decimal string) only with `numericSubject`.
 */
export function subjectOf(
  claims: Readonly<Record<string, unknown>>,
  subjectClaim: string,
  numericSubject: boolean,
  parseUserId: (value: unknown) => string,
  source: 'token' | 'upstream claims',
): string {
  const whose = source === 'token' ? "token's" : "upstream claims'";
  let subject = Object.prototype.hasOwnProperty.call(claims, subjectClaim) ? claims[subjectClaim] : undefined;
  if (subject === undefined) {
    throw new InvalidSubjectError(`The ${source} has no "${subjectClaim}" claim naming the user.`);
  }
  if (typeof subject === 'number') {
    if (!numericSubject) {
      throw new InvalidSubjectError(
        `The ${whose} "${subjectClaim}" claim is a number; set numericSubject: true to accept numeric user ids (as strings).`,
      );
    }
    if (!Number.isSafeInteger(subject) || subject < 0) {
      throw new InvalidSubjectError(`The ${whose} "${subjectClaim}" claim must be a non-negative integer or a string.`);
    }
    subject = String(subject);
  }
  try {
    return parseUserId(subject);
  } catch (cause) {
    const detail = cause instanceof UserContextError ? ` ${cause.message}` : '';
    throw new InvalidSubjectError(`The ${whose} "${subjectClaim}" claim is not a valid user id.${detail}`, { cause });
  }
}
