/**
 * bindHandlerToCurrentUser(): an object's methods, called back later from a
 * shared queue (whose async context is whichever caller advanced it), run as
 * the user who bound it; other properties read through unchanged.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ContextStore,
  UserContextMissingError,
  bindHandlerToCurrentUser,
  configureUser,
  currentUserUuid,
  getUserModel,
  runAsUser,
} from '../src/index.js';

const store = new ContextStore();
afterAll(() => store.close());
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A queue run one task at a time, like p-queue (LangChain's background
 * callback queue): tasks wait in an array and each starts when the one before
 * it ends, so in the async context of the task before it.
 */
function serialQueue() {
  const tasks: Array<() => Promise<void>> = [];
  let running: Promise<void> | null = null;
  const drain = async (): Promise<void> => {
    for (let task = tasks.shift(); task !== undefined; task = tasks.shift()) await task();
    running = null;
  };
  return {
    add(task: () => Promise<void>) {
      tasks.push(task);
      running ??= drain();
    },
    idle: async () => {
      while (running !== null) await running;
    },
  };
}

/** A handler shared by all users, as frameworks' handlers usually are: a class with private state and flags. */
class UsageHandler {
  readonly name = 'usage';
  readonly awaitHandlers = false;
  #seen: Array<{ expected: string; user: string | undefined; model: string }> = [];
  async handleEnd(expected: string): Promise<void> {
    await delay(Math.random() * 8);
    this.#seen.push({ expected, user: currentUserUuid(), model: getUserModel() ?? '' });
  }
  get seen() {
    return this.#seen;
  }
}

async function run(bind: boolean) {
  const queue = serialQueue();
  const handler = new UsageHandler();
  const users = Array.from({ length: 30 }, (_, i) => ({ uuid: randomUUID(), model: `m${i}` }));
  await Promise.all(users.map((u) => runAsUser(u.uuid, async () => {
    await configureUser({ model: u.model });
    await delay(Math.random() * 10);
    const h = bind ? bindHandlerToCurrentUser(handler) : handler;
    queue.add(() => h.handleEnd(u.uuid));
  }, { store })));
  await queue.idle();
  return handler.seen;
}

describe('bindHandlerToCurrentUser', () => {
  it('a handler called from a shared queue reads another user unbound, and always its own user (and model) bound', async () => {
    const unbound = await run(false);
    expect(unbound).toHaveLength(30);
    expect(unbound.filter((s) => s.user !== s.expected).length).toBeGreaterThan(0);

    const bound = await run(true);
    expect(bound).toHaveLength(30);
    expect(bound.filter((s) => s.user !== s.expected)).toEqual([]);
    const models = new Map<string, string>();
    for (const s of bound) models.set(s.expected, s.model);
    expect(new Set(models.values()).size).toBe(30);
  });

  it('reads properties through, keeps #private fields working, returns the same wrapper each time, and binds methods added later', async () => {
    const user = randomUUID();
    const handler = new UsageHandler();
    const bound = await runAsUser(user, () => bindHandlerToCurrentUser(handler), { store });
    expect(bound.name).toBe('usage');
    expect(bound.awaitHandlers).toBe(false);
    expect('handleEnd' in bound).toBe(true);
    expect(bound.handleEnd).toBe(bound.handleEnd);
    expect(bound).toBeInstanceOf(UsageHandler);
    // The scope that bound it has ended: the method runs in a new scope of the same user.
    await bound.handleEnd(user);
    expect(handler.seen.map((s) => s.user)).toEqual([user]);
    expect(bound.seen).toBe(handler.seen);

    const plain: { handleStart?: () => string | undefined } = {};
    const boundPlain = await runAsUser(user, () => bindHandlerToCurrentUser(plain), { store });
    plain.handleStart = () => currentUserUuid();
    expect(boundPlain.handleStart!()).toBe(user);
    // Copied out (as frameworks do with method objects), the methods stay bound.
    const copy = { ...boundPlain };
    expect(copy.handleStart!()).toBe(user);
  });

  it('refuses to bind outside a user scope, and refuses non-objects', () => {
    expect(() => bindHandlerToCurrentUser(new UsageHandler())).toThrow(UserContextMissingError);
    expect(() => bindHandlerToCurrentUser(new UsageHandler())).toThrow(/bindHandlerToCurrentUser\(\) was called outside a user scope/);
    expect(() => bindHandlerToCurrentUser(null as unknown as object)).toThrow(TypeError);
    expect(() => bindHandlerToCurrentUser('x' as unknown as object)).toThrow(TypeError);
  });
});
