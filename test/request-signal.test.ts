import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClientDisconnectedError,
  bindAsyncIterable,
  ContextStore,
  currentUserUuid,
  getRequestSignal,
  runAsUser,
  runWithProfile,
  userContext,
} from '../src/index.js';

const secret = randomBytes(48).toString('base64url');
const token = (sub: string) => jwt.sign({ sub }, secret, { algorithm: 'HS256', expiresIn: 600 });

interface Outcome {
  user: string | undefined;
  aborted: boolean;
  reason: unknown;
}

let server: http.Server;
let store: ContextStore;
let port: number;
const outcomes = new Map<string, Outcome>();
const started = new Map<string, () => void>();

beforeAll(async () => {
  store = new ContextStore();
  const app = new Koa();
  app.silent = true;
  app.use(userContext({ store, secret, algorithms: ['HS256'] }));
  app.use(async (ctx, next) => {
    if (ctx.path !== '/stream') return next();
    const chunks = Number(ctx.query['chunks']);
    const signal = getRequestSignal()!;
    async function* produce() {
      for (let i = 0; i < chunks; i++) {
        await new Promise((r) => setTimeout(r, 5));
        if (signal.aborted) return;
        yield `${currentUserUuid()}:${i}\n`;
      }
    }
    ctx.type = 'text/plain';
    ctx.body = Readable.from(ctx.query['bind'] === '0' ? produce() : bindAsyncIterable(produce()));
  });
  app.use(async (ctx) => {
    const id = ctx.query['id'] as string;
    const ms = Number(ctx.query['ms']);
    const signal = getRequestSignal()!;
    started.get(id)?.();
    // A long operation that honours the request signal, like an LLM call.
    const outcome = await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => resolve({ user: currentUserUuid(), aborted: false, reason: undefined }), ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve({ user: currentUserUuid(), aborted: true, reason: signal.reason });
      }, { once: true });
    });
    outcomes.set(id, outcome);
    ctx.body = { ok: true };
    // Keep a handle to check the signal after the response finished.
    signals.set(id, signal);
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  port = (server.address() as AddressInfo).port;
});

const signals = new Map<string, AbortSignal>();

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await store.close();
});

function request(user: string, id: string, ms: number, disconnect: boolean): Promise<number | 'disconnected'> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: `/?id=${id}&ms=${ms}`,
      headers: { authorization: `Bearer ${token(user)}` },
    });
    if (disconnect) {
      started.set(id, () => setTimeout(() => req.destroy(), Math.random() * 10));
      req.on('error', () => resolve('disconnected'));
      req.on('close', () => resolve('disconnected'));
    }
    req.on('response', (res: http.IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (e: Error) => (disconnect ? undefined : reject(e)));
    req.end();
  });
}

const waitFor = async (cond: () => boolean, ms = 3000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('getRequestSignal() in the middleware', () => {
  it('aborts exactly the requests whose client disconnected, many users interleaving', async () => {
    const jobs = Array.from({ length: 40 }, (_, i) => ({
      id: `job${i}`,
      user: randomUUID(),
      disconnect: i % 2 === 0,
    }));
    const results = await Promise.all(
      jobs.map((j) => request(j.user, j.id, j.disconnect ? 5000 : 20 + Math.random() * 30, j.disconnect)),
    );
    await waitFor(() => jobs.every((j) => outcomes.has(j.id)));
    jobs.forEach((j, i) => {
      const outcome = outcomes.get(j.id)!;
      expect(outcome.user).toBe(j.user);
      if (j.disconnect) {
        expect(results[i]).toBe('disconnected');
        expect(outcome.aborted).toBe(true);
        expect(outcome.reason).toBeInstanceOf(ClientDisconnectedError);
        expect((outcome.reason as ClientDisconnectedError).name).toBe('AbortError');
        expect((outcome.reason as ClientDisconnectedError).code).toBe('ERR_CLIENT_DISCONNECTED');
      } else {
        expect(results[i]).toBe(200);
        expect(outcome.aborted).toBe(false);
      }
    });
    // A request that completed normally is never aborted afterwards.
    await new Promise((r) => setTimeout(r, 20));
    for (const j of jobs.filter((job) => !job.disconnect)) expect(signals.get(j.id)!.aborted).toBe(false);
  });
});

describe('streamed bodies', () => {
  it('keep the user scope open until the stream is written, and carry the user into the generator', async () => {
    const user = randomUUID();
    const baseline = store.scopesInFlight;
    const { lines, midway } = await new Promise<{ lines: string[]; midway: number }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/stream?chunks=20', headers: { authorization: `Bearer ${token(user)}` } }, (res) => {
        let text = '';
        let midway = -1;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (midway < 0) midway = store.scopesInFlight - baseline;
        });
        res.on('end', () => resolve({ lines: text.trim().split('\n'), midway }));
      }).on('error', reject);
    });
    expect(midway).toBe(1);
    expect(lines).toEqual(Array.from({ length: 20 }, (_, i) => `${user}:${i}`));
    await waitFor(() => store.scopesInFlight === baseline);
  });

  it('without bindAsyncIterable the generator runs outside the user scope (why it exists)', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/stream?chunks=2&bind=0', headers: { authorization: `Bearer ${token(randomUUID())}` } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    expect(text).toBe('undefined:0\nundefined:1\n');
  });

  it('close the scope when the client disconnects mid-stream', async () => {
    const baseline = store.scopesInFlight;
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/stream?chunks=1000', headers: { authorization: `Bearer ${token(randomUUID())}` } }, (res) => {
        res.once('data', () => req.destroy());
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
    });
    await waitFor(() => store.scopesInFlight === baseline);
  });
});

describe('getRequestSignal() outside HTTP', () => {
  it('is undefined outside a scope and in a scope without a signal', async () => {
    expect(getRequestSignal()).toBeUndefined();
    await runAsUser(randomUUID(), () => expect(getRequestSignal()).toBeUndefined(), { store });
  });

  it('is the signal given to runAsUser, inherited by profile overrides', async () => {
    const controller = new AbortController();
    await runAsUser(randomUUID(), async () => {
      expect(getRequestSignal()).toBe(controller.signal);
      await runWithProfile({ model: 'other' }, async () => {
        await new Promise((r) => setTimeout(r, 1));
        expect(getRequestSignal()).toBe(controller.signal);
      });
    }, { store, signal: controller.signal });
    expect(() => runAsUser(randomUUID(), () => 1, { store, signal: 'x' as never })).toThrow(TypeError);
  });
});
