/**
 * Snapshot semantics: a request reads a stable configuration while other
 * requests of the same user change it, sees its own writes, and never sees
 * another user's writes.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  configureUser,
  getUserModel,
  getUserProvider,
  getUserRuntimeContext,
  runAsUser,
  setUserModel,
} from '../src/index.js';
import { randomDelay } from './support/app.js';

let store: ContextStore;
beforeEach(() => {
  store = new ContextStore();
});
afterEach(async () => {
  await store.close();
});

describe('snapshot per request', () => {
  it('a request keeps reading the configuration it started with while others configure', async () => {
    const id = randomUUID();
    store.commit(id, { provider: 'P0', model: 'M0' });
    const readers = Array.from({ length: 30 }, () =>
      runAsUser(id, async () => {
        const first = getUserRuntimeContext();
        const reads: [string | null, string | null, number][] = [];
        for (let i = 0; i < 5; i++) {
          await randomDelay(8);
          reads.push([getUserProvider(), getUserModel(), getUserRuntimeContext().version]);
        }
        return { first, reads };
      }, { store }),
    );
    const writers = Array.from({ length: 30 }, (_, i) =>
      runAsUser(id, async () => {
        await randomDelay(20);
        await configureUser({ provider: `P${i + 1}`, model: `M${i + 1}` });
      }, { store }),
    );
    const [results] = await Promise.all([Promise.all(readers), Promise.all(writers)]);

    for (const { first, reads } of results) {
      expect([first.provider, first.model]).toEqual(['P0', 'M0']);
      for (const read of reads) expect(read).toEqual(['P0', 'M0', first.version]);
    }
    expect(store.peek(id)?.version).toBe(31);
  });

  it('a request sees its own writes at once and keeps seeing them', async () => {
    const id = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runAsUser(id, async () => {
          await randomDelay(5);
          await configureUser({ provider: `P${i}` });
          const reads: (string | null)[] = [getUserProvider()];
          await randomDelay(5);
          reads.push(getUserProvider());
          await setUserModel(`M${i}`);
          return { i, reads, model: getUserModel() };
        }, { store }),
      ),
    );
    for (const r of results) {
      expect(r.reads).toEqual([`P${r.i}`, `P${r.i}`]);
      expect(r.model).toBe(`M${r.i}`);
    }
  });

  it('a write by one user is never visible to another', async () => {
    const users = Array.from({ length: 50 }, () => randomUUID());
    for (const id of users) store.commit(id, { provider: `p-${id}`, model: `m-${id}-initial` });
    const leaks: string[] = [];
    await Promise.all(
      users.flatMap((id) =>
        Array.from({ length: 4 }, (_, k) =>
          runAsUser(id, async () => {
            await randomDelay(10);
            if (k % 2 === 0) await configureUser({ provider: `p-${id}`, model: `m-${id}-${k}` });
            for (let i = 0; i < 3; i++) {
              await randomDelay(5);
              const provider = getUserProvider();
              const model = getUserModel();
              if (provider !== `p-${id}`) leaks.push(`${id} saw provider ${provider}`);
              if (!model?.startsWith(`m-${id}-`)) leaks.push(`${id} saw model ${model}`);
            }
          }, { store }),
        ),
      ),
    );
    expect(leaks).toEqual([]);
    for (const id of users) expect(store.peek(id)?.model).toMatch(new RegExp(`^m-${id}-[02]$`));
  });
});
