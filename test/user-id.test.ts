/** What a user id may look like, by default and with the store's userId policy. */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  InvalidUserIdError,
  MAX_USER_ID_LENGTH,
  UUID_PATTERN,
  getUserProvider,
  runAsUser,
  type UserIdPolicy,
} from '../src/index.js';

const stores: ContextStore[] = [];
function parserFor(userId?: UserIdPolicy): (value: unknown) => string {
  const store = new ContextStore(userId === undefined ? {} : { userId });
  stores.push(store);
  return store.parseUserId;
}
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe('default policy: UUIDs', () => {
  const parse = parserFor();

  it.each([
    randomUUID(),
    '00000000-0000-0000-0000-000000000000',
    '01890a5d-ac96-774b-bcce-b302099a8057', // v7
    'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  ])('accepts %s and lower-cases it', (id) => {
    expect(parse(id)).toBe(id.toLowerCase());
    expect(UUID_PATTERN.test(id)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['a name', 'alice'],
    ['a UUID without dashes', randomUUID().replace(/-/g, '')],
    ['a UUID in braces', `{${randomUUID()}}`],
    ['a UUID with a newline', `${randomUUID()}\n`],
    ['a non-hex UUID', 'g0000000-0000-0000-0000-000000000000'],
    ['empty', ''],
    ['__proto__', '__proto__'],
    ['constructor', 'constructor'],
    ['a number', 1],
    ['null', null],
    ['undefined', undefined],
    ['an array', [randomUUID()]],
    ['an object', { id: randomUUID() }],
  ])('rejects %s with InvalidUserIdError', (_name, value) => {
    expect(() => parse(value)).toThrow(InvalidUserIdError);
  });
});

describe('custom policy', () => {
  it('a RegExp, with a global flag applied fresh every time, and no case folding', () => {
    const parse = parserFor(/^user-[a-z0-9]{3,}$/g);
    for (let i = 0; i < 3; i++) expect(parse('user-abc')).toBe('user-abc');
    expect(() => parse('USER-ABC')).toThrow(InvalidUserIdError);
    expect(() => parse(randomUUID())).toThrow(/policy/);
  });

  it('a function', () => {
    const parse = parserFor((id) => id.startsWith('t_'));
    expect(parse('t_42')).toBe('t_42');
    expect(() => parse('u_42')).toThrow(InvalidUserIdError);
  });

  it('never accepts reserved names or over-long ids, whatever the policy says', () => {
    const parse = parserFor(() => true);
    for (const name of ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', '']) {
      expect(() => parse(name)).toThrow(InvalidUserIdError);
    }
    expect(parse('x'.repeat(MAX_USER_ID_LENGTH))).toHaveLength(MAX_USER_ID_LENGTH);
    expect(() => parse('x'.repeat(MAX_USER_ID_LENGTH + 1))).toThrow(InvalidUserIdError);
  });

  it('applies to runAsUser and the helpers', () => {
    const store = new ContextStore({ userId: /^team-\d+$/ });
    stores.push(store);
    expect(runAsUser('team-7', () => getUserProvider(), { store })).toBeNull();
    expect(() => runAsUser(randomUUID(), () => 1, { store })).toThrow(InvalidUserIdError);
    expect(store.has('team-7')).toBe(true);
  });

  it('rejects a policy that is neither RegExp nor function', () => {
    expect(() => new ContextStore({ userId: 'uuid' as never })).toThrow(TypeError);
  });
});
