/**
 * Many users, many interleaved requests: no request ever reads another user's
 * configuration or client, and concurrent configures of one user never mix
 * the provider of one write with the model of another.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ContextStore,
  configureUser,
  getUserModel,
  getUserProvider,
  getUserRuntimeContext,
  runAsUser,
  setDefaultStore,
  userContext,
} from '../src/index.js';
import { buildApp, listen, randomDelay } from './support/app.js';
import { clientFactory } from './support/resources.js';
import { SECRET, tokenFor } from './support/tokens.js';

let store: ContextStore;
let llms: ReturnType<typeof clientFactory>;
let server: Awaited<ReturnType<typeof listen>> | undefined;

beforeEach(() => {
  llms = clientFactory();
  store = new ContextStore({ resources: { llmInstance: { create: llms.create } } });
  setDefaultStore(store);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await store.close();
});

interface Read { user?: string; provider: string | null; model: string | null }
interface QueryBody {
  state: string;
  before: Read;
  middle: Read;
  llm: { userUuid: string; provider: string | null; model: string | null } | null;
}

/** The write number k of `provider`/`model`, or null for the defaults; throws on a mixed pair. */
function writeIndex(id: string, read: Read): number | null {
  if (read.provider === null && read.model === null) return null;
  const p = /^prov-(.+)-(\d+)$/.exec(read.provider ?? '');
  const m = /^model-(.+)-(\d+)$/.exec(read.model ?? '');
  if (!p || !m || p[1] !== id || m[1] !== id || p[2] !== m[2]) {
    throw new Error(`user ${id} read a pair nobody wrote for it: ${read.provider} / ${read.model}`);
  }
  return Number(p[2]);
}

async function startServer() {
  const app = buildApp(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
  server = await listen(app.app);
  return request(server.server);
}

describe('200 users over HTTP', () => {
  it('every request reads only its own user\'s configuration and client', async () => {
    const http = await startServer();
    const users = Array.from({ length: 200 }, () => randomUUID());
    const CONFIGURES = 3;
    const QUERIES = 4;
    const problems: string[] = [];
    let queries = 0;

    const requests = users.flatMap((id) => {
      const auth = `Bearer ${tokenFor(id)}`;
      const configures = Array.from({ length: CONFIGURES }, async (_, k) => {
        await randomDelay(60);
        const res = await http.post('/configure').set('Authorization', auth)
          .send({ provider: `prov-${id}-${k}`, model: `model-${id}-${k}` });
        if (res.status !== 200) return problems.push(`configure ${res.status}`);
        // A request sees its own write.
        if (res.body.provider !== `prov-${id}-${k}` || res.body.model !== `model-${id}-${k}`) {
          problems.push(`${id} configure ${k} answered ${JSON.stringify(res.body)}`);
        }
      });
      const reads = Array.from({ length: QUERIES }, async () => {
        await randomDelay(60);
        const res = await http.post('/query').set('Authorization', auth);
        if (res.status !== 200) return problems.push(`query ${res.status}`);
        queries++;
        const body = res.body as QueryBody;
        try {
          if (body.state !== id || body.before.user !== id || body.middle.user !== id) {
            throw new Error(`${id} ran as ${body.state}/${body.before.user}/${body.middle.user}`);
          }
          writeIndex(id, body.before);
          if (body.middle.provider !== body.before.provider || body.middle.model !== body.before.model) {
            throw new Error(`${id} snapshot changed during the request`);
          }
          const llm = body.llm;
          if (!llm || llm.userUuid !== id || llm.provider !== body.before.provider || llm.model !== body.before.model) {
            throw new Error(`${id} got client ${JSON.stringify(llm)} for ${body.before.provider}/${body.before.model}`);
          }
        } catch (error) {
          problems.push((error as Error).message);
        }
      });
      return [...configures, ...reads];
    });
    await Promise.all(requests);

    expect(problems).toEqual([]);
    expect(queries).toBe(users.length * QUERIES);
    expect(store.size).toBe(users.length);
    for (const id of users) {
      const view = store.peek(id)!;
      expect(writeIndex(id, view)).not.toBeNull();
      expect(view.version).toBe(CONFIGURES);
    }
    for (const llm of llms.built) expect(llm.provider === null || llm.provider.includes(llm.userUuid)).toBe(true);
    expect(store.scopesInFlight).toBe(0);
  });
});

describe('concurrent configures of one user', () => {
  const WRITES = 100;

  it('every read, in or out of a scope, is a pair some call wrote; the final state too', async () => {
    const id = randomUUID();
    const written = new Set<number>();
    const problems: string[] = [];
    const check = (read: Read): void => {
      try {
        const k = writeIndex(id, read);
        if (k !== null && !written.has(k)) problems.push(`read write ${k} before it was made`);
      } catch (error) {
        problems.push((error as Error).message);
      }
    };

    const writers = Array.from({ length: WRITES }, (_, k) =>
      runAsUser(id, async () => {
        await randomDelay(30);
        written.add(k);
        const view = await configureUser({ provider: `prov-${id}-${k}`, model: `model-${id}-${k}` });
        if (view.provider !== `prov-${id}-${k}` || getUserModel() !== `model-${id}-${k}`) {
          problems.push(`write ${k} does not see itself`);
        }
        await randomDelay(5);
        check({ provider: getUserProvider(), model: getUserModel() });
      }, { store }),
    );
    const scopedReaders = Array.from({ length: 50 }, () =>
      runAsUser(id, async () => {
        for (let i = 0; i < 5; i++) {
          await randomDelay(10);
          check({ provider: getUserProvider(), model: getUserModel() });
        }
      }, { store }),
    );
    const outsideReaders = Array.from({ length: 50 }, async () => {
      for (let i = 0; i < 5; i++) {
        await randomDelay(10);
        const view = getUserRuntimeContext(id); // explicit id, no scope
        check(view);
        check({ provider: getUserProvider(id), model: getUserModel(id) });
      }
    });
    await Promise.all([...writers, ...scopedReaders, ...outsideReaders]);

    expect(problems).toEqual([]);
    const final = store.peek(id)!;
    expect(written.has(writeIndex(id, final)!)).toBe(true);
    expect(final.version).toBe(WRITES); // no write was lost
  });

  it('over HTTP: concurrent /configure and /query of one user never mix pairs', async () => {
    const http = await startServer();
    const id = randomUUID();
    const auth = `Bearer ${tokenFor(id)}`;
    const problems: string[] = [];
    const sent = Array.from({ length: WRITES }, async (_, k) => {
      await randomDelay(40);
      const res = await http.post('/configure').set('Authorization', auth)
        .send({ provider: `prov-${id}-${k}`, model: `model-${id}-${k}` });
      if (res.body.provider !== `prov-${id}-${k}` || res.body.model !== `model-${id}-${k}`) {
        problems.push(`configure ${k} answered ${JSON.stringify(res.body)}`);
      }
    });
    const queried = Array.from({ length: WRITES }, async () => {
      await randomDelay(40);
      const body = (await http.post('/query').set('Authorization', auth)).body as QueryBody;
      try {
        writeIndex(id, body.before);
        writeIndex(id, body.middle);
        if (body.llm?.model !== body.before.model) problems.push('client built for another model');
      } catch (error) {
        problems.push((error as Error).message);
      }
    });
    await Promise.all([...sent, ...queried]);
    expect(problems).toEqual([]);
    expect(store.peek(id)!.version).toBe(WRITES);
    expect(writeIndex(id, store.peek(id)!)).not.toBeNull();
  });
});
