import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ContextStore,
  UserContextMissingError,
  bindAsyncIterable,
  configureUser,
  currentProfileTag,
  currentUserUuid,
  getUserModel,
  runAsUser,
  runWithProfile,
} from '../src/index.js';

const store = new ContextStore();
afterAll(() => store.close());
const jitter = () => new Promise<void>((r) => setTimeout(r, Math.random() * 4));

async function* tokens(n: number) {
  for (let i = 0; i < n; i++) {
    await jitter();
    yield `${currentUserUuid()}|${getUserModel()}|${currentProfileTag() ?? '-'}|${i}`;
  }
}

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('bindAsyncIterable', () => {
  it('iterators created by many users and consumed interleaved, outside any scope, stay with their user', async () => {
    const users = Array.from({ length: 20 }, (_, i) => ({ uuid: randomUUID(), model: `m${i}`, tag: i % 3 === 0 ? `t${i}` : undefined }));
    const iterables = await Promise.all(
      users.map((u) =>
        runAsUser(u.uuid, async () => {
          await configureUser({ model: u.model });
          return u.tag === undefined
            ? bindAsyncIterable(tokens(6))
            : runWithProfile({ tag: u.tag }, () => bindAsyncIterable(tokens(6)));
        }, { store }),
      ),
    );
    // The scopes that created them have ended; consume from the test's own context.
    expect(currentUserUuid()).toBeUndefined();
    const results = await Promise.all(iterables.map((it) => drain(it)));
    users.forEach((u, i) => {
      // After its scope ended, an iterator runs on the user's current configuration (the override has ended too).
      expect(results[i]).toEqual(Array.from({ length: 6 }, (_, k) => `${u.uuid}|${u.model}|-|${k}`));
    });
  });

  it('runs in the very scope (override included) while it is open', async () => {
    const user = randomUUID();
    const out = await runAsUser(user, () =>
      runWithProfile({ tag: '@fast', model: 'fast-model' }, async () => {
        const it = bindAsyncIterable(tokens(3));
        // Pulled from another user's scope, as a shared consumer would.
        return runAsUser(randomUUID(), () => drain(it), { store });
      }), { store });
    expect(out).toEqual([0, 1, 2].map((i) => `${user}|fast-model|@fast|${i}`));
  });

  it('forwards return() so generators clean up, and rejects non-iterables and calls outside a scope', async () => {
    let cleaned: string | undefined;
    async function* gen() {
      try {
        yield 1;
        yield 2;
      } finally {
        cleaned = currentUserUuid();
      }
    }
    const user = randomUUID();
    await runAsUser(user, async () => {
      for await (const x of bindAsyncIterable(gen())) if (x === 1) break;
    }, { store });
    expect(cleaned).toBe(user);
    expect(() => bindAsyncIterable(gen())).toThrow(UserContextMissingError);
    await runAsUser(user, () => expect(() => bindAsyncIterable([1, 2] as never)).toThrow(TypeError), { store });
  });
});
