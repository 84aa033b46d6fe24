/**
 * Where the user's context propagates, on every supported Node line: Node 22
 * runs AsyncLocalStorage on async hooks, Node 24 and later on
 * AsyncContextFrame (no async hooks; `--no-async-context-frame` turns it
 * off; it is not allowed in NODE_OPTIONS). Each test reads the library's getters (`currentUserUuid()`,
 * `getUserProvider()`) in one corner where users lose context or where the two
 * implementations are known to differ, with several users interleaving.
 * Where the lines differ the expectation is per line, and docs/semantics.md
 * ("Across Node lines") gives the fix. `npm run test:lines` runs this file on
 * Node 22 and 26; the whole suite runs it on Node 24.
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter, EventEmitterAsyncResource, once } from 'node:events';
import { createServer, get } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Readable, pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateText, streamText, tool, jsonSchema } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ContextStore,
  bindAsyncIterable,
  bindToCurrentUser,
  configureUser,
  currentUserUuid,
  getUserProvider,
  runAsUser,
  setDefaultStore,
} from '../src/index.js';
import { randomDelay } from './support/app.js';

/** Whether this process runs AsyncLocalStorage on AsyncContextFrame (Node 24+, unless turned off). */
const major = Number(process.versions.node.split('.')[0]);
const ACF = major >= 24 && !process.execArgv.includes('--no-async-context-frame');

interface User {
  readonly id: string;
  readonly provider: string;
}
const users: User[] = Array.from({ length: 6 }, (_, i) => ({ id: randomUUID(), provider: `P${i}` }));
const [A, B] = users as [User, User];
let store: ContextStore;

/** What the library's getters say here: the user's provider, or `outside` when no user scope is current. */
function seen(): string {
  return currentUserUuid() === undefined ? 'outside' : `${getUserProvider()}`;
}
const as = <R>(user: User, fn: () => R): R => runAsUser(user.id, fn);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

beforeAll(async () => {
  store = new ContextStore({ mode: 'multi-user' });
  setDefaultStore(store);
  for (const user of users) await as(user, () => configureUser({ provider: user.provider, model: `m-${user.provider}` }));
});
afterAll(async () => {
  await store.close({ timeout: 100 });
});

describe(`AsyncLocalStorage on Node ${process.versions.node} (${ACF ? 'AsyncContextFrame' : 'async hooks'})`, () => {
  it('timers, immediates, nextTick, microtasks, timers/promises and the third tick of an interval keep the user, many users interleaving', async () => {
    const one = (user: User) =>
      as(user, async () => {
        const got: string[] = [];
        await new Promise<void>((resolve) => setTimeout(() => (got.push(seen()), resolve()), Math.random() * 5));
        await new Promise<void>((resolve) => setImmediate(() => (got.push(seen()), resolve())));
        await new Promise<void>((resolve) => process.nextTick(() => (got.push(seen()), resolve())));
        await new Promise<void>((resolve) => queueMicrotask(() => (got.push(seen()), resolve())));
        await sleep(Math.random() * 5);
        got.push(seen());
        await new Promise<void>((resolve) => {
          let n = 0;
          const t = setInterval(() => {
            if (++n < 3) return;
            clearInterval(t);
            got.push(seen());
            resolve();
          }, 1);
        });
        return got;
      });
    const all = await Promise.all(users.flatMap((u) => [one(u), one(u)]));
    all.forEach((got, i) => expect(got).toEqual(Array(6).fill(users[Math.floor(i / 2)]!.provider)));
  });

  it('a scope never outlives runAsUser: after it returns, and in work scheduled after it, no user is current', async () => {
    as(A, () => seen());
    expect(seen()).toBe('outside');
    await tick();
    expect(seen()).toBe('outside');
  });

  // nodejs/node#62290: the app's own storage, exit() then enterWith() inside
  // it. On async hooks the enterWith() outlives exit() and leaks into the
  // caller; on AsyncContextFrame exit() restores the caller's frame. The
  // library's scopes are entered with run() only, so its getters are the same
  // on every line.
  it('exit() + enterWith() on an app storage (nodejs/node#62290): per line for the app storage, the same for the library', async () => {
    const app = new AsyncLocalStorage<string>();
    const result = await app.run('outer', () =>
      as(A, async () => {
        const ee = new EventEmitter();
        const got: Record<string, string | undefined> = {};
        app.exit(() => {
          app.enterWith('entered');
          got['inside'] = app.getStore();
          ee.on('finish', () => (got['listener'] = `${app.getStore()}/${seen()}`));
        });
        got['after'] = `${app.getStore()}/${seen()}`;
        await tick();
        ee.emit('finish');
        return got;
      }),
    );
    const appAfter = ACF ? 'outer' : 'entered';
    expect(result).toEqual({ inside: 'entered', after: `${appAfter}/${A.provider}`, listener: `${appAfter}/${A.provider}` });
  });

  it('EventEmitter: a listener runs as the emitter of the event, not as the user who registered it; bindToCurrentUser() and EventEmitterAsyncResource keep the registering user', () => {
    const ee = new EventEmitter();
    const got: string[] = [];
    as(A, () => {
      ee.on('x', () => got.push(`plain:${seen()}`));
      ee.on('x', bindToCurrentUser(() => got.push(`bound:${seen()}`)));
    });
    as(B, () => ee.emit('x'));
    ee.emit('x');
    expect(got).toEqual([`plain:${B.provider}`, `bound:${A.provider}`, 'plain:outside', `bound:${A.provider}`]);

    const resource = as(A, () => new EventEmitterAsyncResource({ name: 'kuc-test' }));
    resource.on('x', () => got.push(`resource:${seen()}`));
    as(B, () => resource.emit('x'));
    expect(got.at(-1)).toBe(`resource:${A.provider}`);
    resource.emitDestroy();
  });

  it('thenables: a native await of a thenable keeps the user inside then() and after it; a non-native promise library that queues callbacks in a shared loop loses it unless bound', async () => {
    const thenable = await Promise.all(
      users.map((user) =>
        as(user, async () => {
          let inThen = '';
          await {
            then(resolve: (v: number) => void) {
              inThen = seen();
              setTimeout(() => resolve(1), Math.random() * 3);
            },
          };
          return [inThen, seen()];
        }),
      ),
    );
    thenable.forEach((got, i) => expect(got).toEqual([users[i]!.provider, users[i]!.provider]));

    // A minimal "non-native" promise: callbacks queued and run by one loop started outside any scope.
    const queue: (() => void)[] = [];
    const loop = setInterval(() => queue.splice(0).forEach((f) => f()), 1);
    const later = (cb: () => void): void => void queue.push(cb);
    try {
      const got = await Promise.all(
        users.map((user) =>
          as(user, () =>
            Promise.all([
              new Promise<string>((resolve) => later(() => resolve(seen()))),
              new Promise<string>((resolve) => later(bindToCurrentUser(() => resolve(seen())))),
            ]),
          ),
        ),
      );
      got.forEach((pair, i) => expect(pair).toEqual(['outside', users[i]!.provider]));
    } finally {
      clearInterval(loop);
    }
  });

  it('a promise created as one user and continued as another: then() runs as the user who called then()', async () => {
    let resolve!: () => void;
    const p = as(A, () => new Promise<void>((r) => (resolve = r)));
    const q = as(B, () => p.then(() => seen()));
    resolve();
    expect(await q).toBe(B.provider);
  });

  it('streams: pipeline() callbacks and data listeners keep the user; a web ReadableStream pulls as the user who created it', async () => {
    const piped = await Promise.all(
      users.map((user) =>
        as(user, () => new Promise<string>((resolve, reject) => {
          const through = new PassThrough();
          through.resume();
          pipeline(Readable.from(['a', 'b']), through, (err) => (err ? reject(err) : resolve(seen())));
        })),
      ),
    );
    expect(piped).toEqual(users.map((u) => u.provider));

    const made = as(A, () => new ReadableStream<number>({ pull: (c) => (c.enqueue(seen() === A.provider ? 1 : 0), c.close()) }));
    const read = await as(B, async () => (await made.getReader().read()).value);
    expect(read).toBe(1);
  });

  it('sockets: a client socket keeps its user in connect, data and close callbacks; a server created outside any scope serves connections outside any scope', async () => {
    const serverSide: string[] = [];
    const server = createNetServer((socket) => {
      serverSide.push(seen());
      socket.on('data', () => {
        serverSide.push(seen());
        socket.end('pong');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const clients = await Promise.all(
        users.map((user) =>
          as(user, () => new Promise<string[]>((resolve) => {
            const got: string[] = [];
            const socket = connect(port, '127.0.0.1', () => {
              got.push(seen());
              socket.write('ping');
            });
            socket.on('data', () => got.push(seen()));
            socket.on('close', () => (got.push(seen()), resolve(got)));
          })),
        ),
      );
      clients.forEach((got, i) => expect(got).toEqual(Array(3).fill(users[i]!.provider)));
      expect(serverSide).toEqual(Array(users.length * 2).fill('outside'));
    } finally {
      server.close();
    }

    // An HTTP client's response callbacks run as the user who made the request.
    const http = createServer((_req, res) => res.end('ok'));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
      const got = await Promise.all(
        users.map((user) =>
          as(user, () => new Promise<string>((resolve) => get(url, (res) => (res.resume(), res.on('end', () => resolve(seen())))))),
        ),
      );
      expect(got).toEqual(users.map((u) => u.provider));
    } finally {
      http.close();
    }
  });

  it('AsyncResource.bind() and AsyncLocalStorage.snapshot() run as the user they were made in', () => {
    const bound = as(A, () => AsyncResource.bind(() => seen()));
    const snapshot = as(A, () => AsyncLocalStorage.snapshot());
    expect(as(B, bound)).toBe(A.provider);
    expect(as(B, () => snapshot(() => seen()))).toBe(A.provider);
    expect(bound()).toBe(A.provider);
  });

  it('async iterators: a generator runs as whoever calls next(); bindAsyncIterable() keeps the user who made it', async () => {
    async function* gen(): AsyncGenerator<string> {
      for (let i = 0; i < 3; i++) {
        await randomDelay(2);
        yield seen();
      }
    }
    const plain = as(A, () => gen());
    const bound = as(A, () => bindAsyncIterable(gen()));
    const readAs = (user: User, it: AsyncIterable<string>) =>
      as(user, async () => {
        const got: string[] = [];
        for await (const v of it) got.push(v);
        return got;
      });
    expect(await readAs(B, plain)).toEqual(Array(3).fill(B.provider));
    expect(await readAs(B, bound)).toEqual(Array(3).fill(A.provider));
  });

  // The rejection's handler runs as the user that was current where the
  // promise was created on async hooks (Node 22), as the user current where
  // it was rejected on AsyncContextFrame (24+). The process-level handler
  // runs in a child process: vitest owns this worker's.
  it('unhandledRejection: the handler sees the user of the rejecting code on 24+, of the promise creation on 22', async () => {
    const got = await child('als-unhandled.ts');
    expect(got).toEqual({
      createdAndRejectedAsA: 'A',
      createdAsARejectedAsB: ACF ? 'B' : 'A',
      rejectedOutsideAnyScope: ACF ? 'outside' : 'A',
    });
  });

  it('AI SDK tools: generateText and streamText run each tool execute() as the user who called them, many users interleaving', async () => {
    const whoami = tool({
      description: 'Who is calling',
      inputSchema: jsonSchema<Record<string, never>>({ type: 'object', properties: {} }),
      execute: async () => {
        await randomDelay(3);
        return { provider: getUserProvider(), user: currentUserUuid() };
      },
    });
    const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
    const model = (): MockLanguageModelV4 => {
      let calls = 0;
      return new MockLanguageModelV4({
        doGenerate: async () => {
          await randomDelay(3);
          return calls++ === 0
            ? { content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'whoami', input: '{}' }], finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage, warnings: [] }
            : { content: [{ type: 'text', text: 'done' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] };
        },
        doStream: async () => {
          await randomDelay(3);
          const first = calls++ === 0;
          const parts = first
            ? [{ type: 'tool-call', toolCallId: 'c1', toolName: 'whoami', input: '{}' }, { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage }]
            : [{ type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: 'done' }, { type: 'text-end', id: 't' }, { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage }];
          return { stream: Readable.toWeb(Readable.from(parts)) as ReadableStream<never> };
        },
      } as ConstructorParameters<typeof MockLanguageModelV4>[0]);
    };
    const stopAfterTwo = ({ steps }: { steps: readonly unknown[] }): boolean => steps.length >= 2;
    const outputOf = (steps: readonly { toolResults: readonly { output: unknown }[] }[]): unknown => steps[0]?.toolResults[0]?.output;

    const results = await Promise.all(
      users.flatMap((user) => [
        as(user, async () => {
          const res = await generateText({ model: model(), tools: { whoami }, prompt: 'who am I', stopWhen: stopAfterTwo });
          return outputOf(res.steps);
        }),
        as(user, async () => {
          const res = streamText({ model: model(), tools: { whoami }, prompt: 'who am I', stopWhen: stopAfterTwo });
          await res.consumeStream();
          return outputOf(await res.steps);
        }),
      ]),
    );
    results.forEach((output, i) => {
      const user = users[Math.floor(i / 2)]!;
      expect(output).toEqual({ provider: user.provider, user: user.id });
    });
  });
});

/** Runs test/fixtures/<name> on this Node (through tsx) and returns its last JSON line. */
function child(name: string): Promise<unknown> {
  const root = join(import.meta.dirname, '..');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', name)], { cwd: root, timeout: 20_000 }, (error, stdout, stderr) => {
      if (error !== null) return reject(new Error(`${name}: ${String(error)}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)!));
    });
  });
}
