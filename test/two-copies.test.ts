/**
 * Two copies of the package in one process (an ESM and a CJS build, or a
 * duplicated dependency) share the AsyncLocalStorage and the default store,
 * and recognise each other's stores, events, profile scopes and errors
 * (brands, not `instanceof` on one copy's classes). The second copy is a real
 * copy of `src/`, loaded as separate modules.
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as one from '../src/index.js';

const dir = join(import.meta.dirname, '..', 'test-artifacts', `copy-${randomUUID()}`);
mkdirSync(dir, { recursive: true });
cpSync(join(import.meta.dirname, '..', 'src'), join(dir, 'src'), { recursive: true });
const two = (await import(join(dir, 'src', 'index.ts'))) as typeof one;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('two copies of the package', () => {
  it('are really two module instances', () => {
    expect(two.ContextStore).not.toBe(one.ContextStore);
    expect(two.getUserProvider).not.toBe(one.getUserProvider);
  });

  it('setDefaultStore() of one copy takes the other copy\'s store, and both copies use it', async () => {
    const store = new two.ContextStore();
    expect(store instanceof one.ContextStore).toBe(true);
    expect(new one.ContextEvents() instanceof two.ContextEvents).toBe(true);
    expect({} instanceof one.ContextStore).toBe(false);
    const previous = one.setDefaultStore(store);
    try {
      const user = randomUUID();
      await one.configureUser({ provider: 'Google' }, user);
      expect(two.getUserProvider(user)).toBe('Google');
      new one.ContextStore({ events: new two.ContextEvents() }).close();
    } finally {
      if (previous !== undefined) one.setDefaultStore(previous);
      await store.close();
    }
  });

  it('a scope and a profile override opened by one copy are seen by the other copy\'s helpers', async () => {
    const store = new one.ContextStore();
    const user = randomUUID();
    const seen = await one.runAsUser(
      user,
      async () => {
        await one.configureUser({ provider: 'Google', model: 'gemini-2.5-flash' });
        return one.runWithProfile({ tag: 'fast', provider: 'Anthropic', model: 'claude-3-5-haiku' }, () => ({
          user: two.currentUserUuid(),
          provider: two.getUserProvider(),
          tag: two.currentProfileTag(),
          override: two.isProfileOverride(),
        }));
      },
      { store },
    );
    expect(seen).toEqual({ user, provider: 'Anthropic', tag: 'fast', override: true });
    await store.close();
  });

  it('errors of one copy are instances of the other copy\'s classes, by code', () => {
    const error = new two.ContextStoreUnavailableError('down');
    expect(error instanceof one.ContextStoreUnavailableError).toBe(true);
    expect(error instanceof one.RequestError).toBe(true);
    expect(error instanceof one.UserContextError).toBe(true);
    expect(error instanceof one.AuthError).toBe(false);
    expect(new two.TokenExpiredError('x') instanceof one.AuthError).toBe(true);
    expect(new two.TokenExpiredError('x') instanceof one.InvalidTokenError).toBe(false);
    expect(new Error('x') instanceof one.UserContextError).toBe(false);
  });
});
