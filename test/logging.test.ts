import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import Koa from 'koa';
import pino from 'pino';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { SLOW_REQUEST_MS, accessLogLevel, createApp, createLogger, createStore } from '../examples/app.js';
import { fakeLlmResources } from './support/fake-llm.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import {
  ContextStore,
  bindToCurrentUser,
  configureUser,
  requestLogger,
  runAsUser,
  userLogMixin,
} from '../src/index.js';
import { credentialCorpus, expectNoCredentials, expectRedactedCorpus } from './support/credentials.js';

interface Line {
  level: number;
  msg: string;
  userUuid?: string;
  provider?: string | null;
  model?: string | null;
  [key: string]: unknown;
}

function capture(): { lines: Line[]; stream: { write(s: string): void } } {
  const lines: Line[] = [];
  return { lines, stream: { write: (s: string) => lines.push(JSON.parse(s) as Line) } };
}

const stores: ContextStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
const newStore = () => {
  const s = new ContextStore({ sweepInterval: 0 });
  stores.push(s);
  return s;
};
const tick = () => new Promise((r) => setTimeout(r, Math.random() * 4));

describe('userLogMixin', () => {
  it('adds nothing outside a scope, and a fresh object every call', () => {
    const mixin = userLogMixin({ fields: ['provider'] });
    const a = mixin();
    const b = mixin();
    expect(a).toEqual({});
    expect(a).not.toBe(b);
  });

  it('stamps lines written in runAsUser scopes, child loggers included, with that scope’s own provider/model', async () => {
    const store = newStore();
    const { lines, stream } = capture();
    const logger = pino({ mixin: userLogMixin({ fields: ['provider', 'model'], version: true }) }, stream);
    const child = logger.child({ component: 'planner' });
    const users = [
      { id: randomUUID(), provider: 'Google', model: 'gemini-2.5-flash' },
      { id: randomUUID(), provider: 'Anthropic', model: 'claude-3-5-haiku' },
      { id: randomUUID(), provider: 'OpenAI', model: 'gpt-4o-mini' },
    ];
    logger.info('boot');
    await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 5 }, (_, i) =>
          runAsUser(u.id, async () => {
            await configureUser({ provider: u.provider, model: u.model });
            await tick();
            logger.info({ i }, 'step one');
            await tick();
            child.warn({ i }, 'step two');
          }, { store }),
        ),
      ),
    );
    logger.info('shutdown');
    expect(lines[0]).not.toHaveProperty('userUuid');
    expect(lines.at(-1)).not.toHaveProperty('userUuid');
    const inside = lines.slice(1, -1);
    expect(inside).toHaveLength(users.length * 5 * 2);
    for (const line of inside) {
      const user = users.find((u) => u.id === line.userUuid);
      expect(user, JSON.stringify(line)).toBeDefined();
      expect([line.provider, line.model]).toEqual([user!.provider, user!.model]);
      expect(line['contextVersion']).toBeGreaterThan(0);
    }
    expect(inside.filter((l) => l['component'] === 'planner')).toHaveLength(15);
  });

  it('stamps lines written later by a callback bound with bindToCurrentUser', async () => {
    const store = newStore();
    const { lines, stream } = capture();
    const logger = pino({ mixin: userLogMixin() }, stream);
    const emitter = new EventEmitter();
    const [a, b] = [randomUUID(), randomUUID()];
    for (const u of [a, b]) {
      runAsUser(u, () => emitter.on('tick', bindToCurrentUser((n: number) => logger.info({ n }, 'tick'))), { store });
    }
    emitter.emit('tick', 1); // outside any scope: each listener runs as its own user
    expect(lines.map((l) => l.userUuid)).toEqual([a, b]);
  });

  it('logs serverConfigs and app fields with credentials redacted by name and inside values, nested (the corpus)', async () => {
    const store = newStore();
    const { lines, stream } = capture();
    const logger = pino({ mixin: userLogMixin({ fields: ['serverConfigs', 'integrations' as never, 'model'] }) }, stream);
    const servers = credentialCorpus();
    const app = credentialCorpus();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ model: 'm-1', serverConfigs: { crm: servers.config }, integrations: app.config } as never); // integrations: an app field
      await tick();
      logger.info('configured');
    }, { store });
    expect(lines).toHaveLength(1);
    const text = JSON.stringify(lines[0]);
    expectNoCredentials(text, servers);
    expectNoCredentials(text, app);
    const line = lines[0] as Line & { serverConfigs: { crm: Record<string, unknown> & { nested: { list: Record<string, unknown>[] } } } };
    const integrations = line['integrations'] as Record<string, unknown> & { nested: { list: Record<string, unknown>[] } };
    for (const view of [line.serverConfigs.crm, line.serverConfigs.crm.nested.list[0]!, integrations, integrations.nested.list[0]!]) {
      expectRedactedCorpus(view);
    }
    expect(line.model).toBe('m-1');
  });

  it('validates its options', () => {
    expect(() => userLogMixin({ fields: 'provider' as never })).toThrow(/options\.fields/);
    expect(() => userLogMixin({ userKey: '' })).toThrow(/options\.userKey/);
    expect(() => userLogMixin({ field: ['provider'] } as never)).toThrow(/userLogMixin\(\).*"field".*fields/s);
  });
});

describe('example server logs', () => {
  it('every line written while handling a request carries the user, and the provider/model that user configured', async () => {
    const { lines, stream } = capture();
    const secret = generateSecret();
    // At debug: the example logs successful requests there (accessLogLevel), so every request has its line.
    const { app, store } = createApp({ secret, logger: createLogger({ level: 'debug' }, stream), store: createStore({ resources: fakeLlmResources() }) });
    stores.push(store);
    const server = app.callback();
    const users = [
      { id: randomUUID(), provider: 'Google', model: 'gemini-2.5-flash' },
      { id: randomUUID(), provider: 'Anthropic', model: 'claude-3-5-haiku' },
    ].map((u) => ({ ...u, token: mintToken(secret, u.id) }));
    await Promise.all(
      users.map((u) =>
        request(server).post('/configure').set('Authorization', `Bearer ${u.token}`).send({ provider: u.provider, model: u.model }).expect(200),
      ),
    );
    const perUser = 10;
    const jobs = users.flatMap((u) => Array.from({ length: perUser }, (_, i) => ({ u, i })));
    jobs.sort(() => Math.random() - 0.5);
    await Promise.all(
      jobs.map(({ u, i }) =>
        request(server).post('/query').set('Authorization', `Bearer ${u.token}`).send({ prompt: `question ${i}` }).expect(200),
      ),
    );
    await request(server).get('/me/context').expect(401);

    const refused = lines.filter((l) => l['status'] === 401);
    expect(refused).toHaveLength(1);
    expect(refused[0]).not.toHaveProperty('userUuid');
    const handled = lines.filter((l) => l['status'] !== 401);
    // configure: 2 lines + access line; query: planning, plan ready, answered + access line.
    expect(handled).toHaveLength(users.length * 3 + users.length * perUser * 4);
    for (const line of handled) {
      const user = users.find((u) => u.id === line.userUuid);
      expect(user, `line without its user: ${JSON.stringify(line)}`).toBeDefined();
      if (line.msg === 'request completed' || line.msg === 'configuring') continue;
      // Lines written inside the scope also say what the request ran on.
      expect([line.provider, line.model]).toEqual([user!.provider, user!.model]);
      if (line.msg === 'answered') expect(line['ran']).toBe(`${user!.provider}/${user!.model}`);
    }
    for (const u of users) {
      expect(handled.filter((l) => l.userUuid === u.id && l.msg === 'answered')).toHaveLength(perUser);
    }
  });
});

describe('the example access log (accessLogLevel)', () => {
  it('at info, logs failed and slow requests only; at debug, every request', async () => {
    for (const level of ['info', 'debug'] as const) {
      const { lines, stream } = capture();
      const secret = generateSecret();
      const { app, store } = createApp({ secret, logger: createLogger({ level }, stream), store: createStore({ resources: fakeLlmResources() }) });
      stores.push(store);
      const server = app.callback();
      const token = mintToken(secret, randomUUID());
      await request(server).get('/me/context').set('Authorization', `Bearer ${token}`).expect(200);
      await request(server).get('/nowhere').set('Authorization', `Bearer ${token}`).expect(404);
      await request(server).get('/me/context').expect(401);
      const access = lines.filter((l) => l.msg === 'request completed').map((l) => [l.level, l['path'], l['status']]);
      const failures = [[40, '/nowhere', 404], [40, '/me/context', 401]];
      expect(access, level).toEqual(level === 'info' ? failures : [[20, '/me/context', 200], ...failures]);
    }
    expect([accessLogLevel(200, 5), accessLogLevel(200, SLOW_REQUEST_MS), accessLogLevel(302, 1), accessLogLevel(404, 1), accessLogLevel(503, 1)])
      .toEqual(['debug', 'info', 'debug', 'warn', 'error']);
  });
});

describe('requestLogger', () => {
  it('logs one line per request at a level matching its status, with the user when there is one', async () => {
    const { lines, stream } = capture();
    const logger = pino({}, stream);
    const app = new Koa();
    app.silent = true;
    app.use(requestLogger({ logger, ignore: (ctx) => ctx.path === '/health' }));
    app.use(async (ctx) => {
      if (ctx.path === '/boom') throw new Error('boom');
      if (ctx.path === '/me') ctx.state['userUuid'] = 'u-1';
      ctx.status = ctx.path === '/missing' ? 404 : 200;
      ctx.body = 'ok';
    });
    const server = app.callback();
    await request(server).get('/me').expect(200);
    await request(server).get('/missing').expect(404);
    await request(server).get('/boom').expect(500);
    await request(server).get('/health').expect(200);
    expect(lines.map((l) => [l.level, l['path'], l['status'], l.userUuid ?? null])).toEqual([
      [30, '/me', 200, 'u-1'],
      [40, '/missing', 404, null],
      [50, '/boom', 500, null],
    ]);
    expect(lines.every((l) => typeof l['ms'] === 'number' && l.msg === 'request completed')).toBe(true);
  });

  it('writes each line at the level options.level gives, none for silent, and builds no line the logger drops', async () => {
    const { lines, stream } = capture();
    const logger = pino({ level: 'info' }, stream);
    const seen: Array<[number, boolean]> = [];
    const app = new Koa();
    app.silent = true;
    app.use(requestLogger({
      logger,
      level: (status, ms, ctx) => {
        seen.push([status, typeof ms === 'number' && ms >= 0 && ctx.path.length > 0]);
        return ctx.path === '/quiet' ? 'silent' : ctx.path === '/detail' ? 'debug' : status >= 400 ? 'error' : 'info';
      },
    }));
    let pathRead = 0;
    app.use(async (ctx) => {
      ctx.status = ctx.path === '/missing' ? 404 : 200;
      ctx.body = 'ok';
    });
    const server = app.callback();
    for (const path of ['/a', '/quiet', '/detail', '/missing']) await request(server).get(path);
    expect(lines.map((l) => [l.level, l['path'], l['status']])).toEqual([[30, '/a', 200], [50, '/missing', 404]]);
    expect(seen).toEqual([[200, true], [200, true], [200, true], [404, true]]);
    // A line at a level pino drops is not built: the path is not even read for it.
    const quiet = new Koa();
    quiet.silent = true;
    quiet.use(requestLogger({ logger, level: () => 'debug' }));
    quiet.use((ctx) => {
      Object.defineProperty(ctx, 'path', { get: () => (pathRead++, '/x') });
      ctx.body = 'ok';
    });
    await request(quiet.callback()).get('/x').expect(200);
    expect(pathRead).toBe(0);
    const wrong = new Koa();
    wrong.silent = true;
    const errors: unknown[] = [];
    wrong.on('error', (error: unknown) => errors.push(error));
    wrong.use(requestLogger({ logger, level: () => 'loud' as never }));
    wrong.use((ctx) => void (ctx.body = 'ok'));
    await request(wrong.callback()).get('/x').expect(500);
    expect(String(errors[0])).toMatch(/options\.level returned "loud"/);
  });

  it('validates its options', () => {
    expect(() => requestLogger({ logger: pino({ level: 'silent' }), level: 'debug' as never })).toThrow(/options\.level must be a function/);
    expect(() => requestLogger({ logger: { info() {}, warn() {}, error() {} }, level: () => 'info' })).toThrow(/debug method/);
    expect(() => requestLogger(undefined as never)).toThrow(TypeError);
    expect(() => requestLogger({ logger: pino({ level: 'silent' }), levels: () => 'info' } as never)).toThrow(/requestLogger\(\).*"levels".*level/s);
    expect(() => requestLogger({ logger: {} as never })).toThrow(/options\.logger/);
    expect(() => requestLogger({ logger: pino({ level: 'silent' }), ignore: 1 as never })).toThrow(/options\.ignore/);
  });
});
