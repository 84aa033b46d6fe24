/** The error classes: stable codes, names, HTTP mapping and the hierarchy apps catch on. */
import { describe, expect, it } from 'vitest';
import {
  AuthError,
  InvalidContextValueError,
  InvalidSubjectError,
  InvalidTokenError,
  InvalidUserIdError,
  KeyMisconfiguredError,
  KeyUnavailableError,
  MalformedAuthorizationError,
  MissingTokenError,
  StoreClosedError,
  TokenExpiredError,
  TokenNotActiveError,
  UserContextError,
  UserContextMissingError,
} from '../src/index.js';

const plain = [
  ['UserContextMissingError', 'ERR_USER_CONTEXT_MISSING', UserContextMissingError],
  ['InvalidUserIdError', 'ERR_INVALID_USER_ID', InvalidUserIdError],
  ['InvalidContextValueError', 'ERR_INVALID_CONTEXT_VALUE', InvalidContextValueError],
  ['StoreClosedError', 'ERR_STORE_CLOSED', StoreClosedError],
] as const;

const auth = [
  ['MissingTokenError', 'ERR_MISSING_TOKEN', 401, 'missing_token', undefined, MissingTokenError],
  ['MalformedAuthorizationError', 'ERR_MALFORMED_AUTHORIZATION', 400, 'invalid_request', 'invalid_request', MalformedAuthorizationError],
  ['InvalidTokenError', 'ERR_INVALID_TOKEN', 401, 'invalid_token', 'invalid_token', InvalidTokenError],
  ['TokenExpiredError', 'ERR_TOKEN_EXPIRED', 401, 'token_expired', 'invalid_token', TokenExpiredError],
  ['TokenNotActiveError', 'ERR_TOKEN_NOT_ACTIVE', 401, 'token_not_yet_valid', 'invalid_token', TokenNotActiveError],
  ['InvalidSubjectError', 'ERR_INVALID_SUBJECT', 401, 'invalid_subject', 'invalid_token', InvalidSubjectError],
  ['KeyUnavailableError', 'ERR_KEY_UNAVAILABLE', 503, 'key_unavailable', undefined, KeyUnavailableError],
  ['KeyMisconfiguredError', 'ERR_KEY_MISCONFIGURED', 500, 'key_misconfigured', undefined, KeyMisconfiguredError],
] as const;

describe('error classes', () => {
  it.each(plain)('%s has code %s and is a UserContextError, not an AuthError', (name, code, Cls) => {
    const error = new Cls('m', { cause: 'c' });
    expect(error).toBeInstanceOf(UserContextError);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(AuthError);
    expect(error.code).toBe(code);
    expect(Cls.code).toBe(code);
    expect(error.name).toBe(name);
    expect(error.message).toBe('m');
    expect(error.cause).toBe('c');
  });

  it.each(auth)('%s has code %s, status %i and error %s', (name, code, status, error, bearerError, Cls) => {
    const e = new Cls('why');
    expect(e).toBeInstanceOf(AuthError);
    expect(e).toBeInstanceOf(UserContextError);
    expect({ code: e.code, status: e.status, error: e.error, bearerError: e.bearerError, name: e.name }).toEqual({
      code,
      status,
      error,
      bearerError,
      name,
    });
  });
});

describe('request errors that are not about credentials', () => {
  it('a store outage and a closed store are RequestErrors with their own status, never AuthErrors', async () => {
    const { ContextStoreUnavailableError, RequestError } = await import('../src/index.js');
    const outage = new ContextStoreUnavailableError('Redis is down');
    expect(outage).toBeInstanceOf(RequestError);
    expect(outage).not.toBeInstanceOf(AuthError);
    expect([outage.status, outage.error, outage.code]).toEqual([503, 'context_store_unavailable', 'ERR_CONTEXT_STORE_UNAVAILABLE']);
    const closed = new StoreClosedError('closed');
    expect(closed).toBeInstanceOf(RequestError);
    expect(closed).not.toBeInstanceOf(AuthError);
    expect([closed.status, closed.error]).toEqual([503, 'shutting_down']);
  });
});
