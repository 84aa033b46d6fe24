import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_CONFIG,
  APP_STATE,
  ContextStore,
  UNMIGRATED_GLOBAL_WARNING,
  configureUser,
  getUserModel,
  runAsUser,
  setDefaultStore,
  type UserConfig,
} from '../src/index.js';
import { legacyQuery, readLlm, readProvider, writeModel } from './fixtures/legacy-agent.js';

const warnings: Error[] = [];
const onWarning = (w: Error) => {
  if ((w as Error & { code?: string }).code === UNMIGRATED_GLOBAL_WARNING) warnings.push(w);
};
let store: ContextStore;
let previous: ContextStore | undefined;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

class Llm {
  constructor(readonly user: string, readonly model: string | null) {}
}

beforeAll(() => {
  process.on('warning', onWarning);
  store = new ContextStore({
    resources: { llmInstance: { create: (c: UserConfig, user: string) => new Llm(user, c.model) } },
  });
  previous = setDefaultStore(store);
});

afterAll(async () => {
  process.off('warning', onWarning);
  if (previous !== undefined) setDefaultStore(previous);
  await store.close();
});

describe('legacy globals outside any scope', () => {
  it('read and write the process-wide values, without warnings', async () => {
    APP_CONFIG.CURRENT_PROVIDER = 'Ollama';
    APP_CONFIG.CURRENT_MODEL = 'llama3';
    expect(APP_CONFIG.CURRENT_PROVIDER).toBe('Ollama');
    expect(readProvider()).toBe('Ollama');
    expect(store.globalGeneration().config.model).toBe('llama3');
    await tick();
    expect(warnings).toEqual([]);
  });
});

describe('legacy globals inside user scopes', () => {
  it('are routed to each user\'s context, with many users interleaving; the process-wide values never change', async () => {
    APP_CONFIG.CURRENT_PROVIDER = 'Ollama';
    APP_CONFIG.CURRENT_MODEL = 'llama3';
    const users = Array.from({ length: 20 }, (_, i) => ({ uuid: randomUUID(), provider: `P${i}`, model: `m${i}` }));
    await Promise.all(users.map((u) => runAsUser(u.uuid, () => configureUser({ provider: u.provider }))));
    const results = await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 5 }, (_, q) =>
          runAsUser(u.uuid, async () => {
            // Unmigrated code writes the global, then reads it back after awaits.
            writeModel(`${u.model}-${q}`);
            const answer = await legacyQuery(`q${q}`);
            const llm = readLlm() as Llm;
            return { u, q, answer, llm, model: getUserModel() };
          }),
        ),
      ),
    );
    for (const { u, q, answer, llm, model } of results) {
      expect(answer).toBe(`${u.provider}/${u.model}-${q}: q${q}`);
      expect(model).toBe(`${u.model}-${q}`);
      expect(llm).toBeInstanceOf(Llm);
      expect(llm.user).toBe(u.uuid);
      expect(llm.model).toBe(`${u.model}-${q}`);
    }
    for (const u of users) expect(store.peek(u.uuid)!.model).toMatch(new RegExp(`^${u.model}-\\d$`));
    expect(APP_CONFIG.CURRENT_PROVIDER).toBe('Ollama');
    expect(APP_CONFIG.CURRENT_MODEL).toBe('llama3');
  });

  it('APP_STATE.mcp_client and server_configs are routed too', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const clientA = { name: 'mcp-a', close() {} };
    const clientB = { name: 'mcp-b', close() {} };
    await Promise.all([
      runAsUser(a, async () => {
        // server_configs first: changing it drops the MCP client built for the old configs.
        APP_STATE.server_configs = { warehouse: { url: 'http://127.0.0.1:1/mcp' } };
        APP_STATE.mcp_client = clientA;
      }),
      runAsUser(b, async () => {
        APP_STATE.mcp_client = clientB;
      }),
    ]);
    await runAsUser(a, () => {
      expect(APP_STATE.mcp_client).toBe(clientA);
      expect(APP_STATE.server_configs).toEqual({ warehouse: { url: 'http://127.0.0.1:1/mcp' } });
    });
    await runAsUser(b, () => {
      expect(APP_STATE.mcp_client).toBe(clientB);
      expect(APP_STATE.server_configs).toEqual({});
    });
    expect(APP_STATE.mcp_client).toBeNull();
  });

  it('reports each unmigrated call site once, with a code and its file:line', async () => {
    await tick();
    const sites = warnings.map((w) => /at (\S+?:\d+):\d+ was routed/.exec(w.message)?.[1]);
    const fixture = (line: number) => expect.stringMatching(new RegExp(`test/fixtures/legacy-agent\\.ts:${line}$`));
    // Every distinct call site used inside a scope so far, exactly once each, despite 100+ calls.
    expect(sites.filter((s) => s?.includes('legacy-agent.ts')).sort()).toEqual(
      [fixture(10), fixture(14), fixture(19), fixture(21)].sort(),
    );
    const write = warnings.find((w) => w.message.includes('legacy-agent.ts:10'))!;
    expect(write.name).toBe('KoaUserContextWarning');
    expect(write.message).toContain('APP_CONFIG.CURRENT_MODEL written');
    expect(write.message).toContain('setUserModel()');
    const read = warnings.find((w) => w.message.includes('legacy-agent.ts:19'))!;
    expect(read.message).toContain('APP_CONFIG.CURRENT_PROVIDER read');
    expect(read.message).toContain('getUserProvider()');
    // A call site outside the fixture (this file) is reported with this file's name.
    expect(sites.some((s) => s?.includes('legacy-routing.test.ts'))).toBe(true);
    // readProvider() (line 6) was only called outside scopes: never reported.
    expect(warnings.some((w) => w.message.includes('legacy-agent.ts:6:'))).toBe(false);
    const count = warnings.length;
    await runAsUser(randomUUID(), () => readProvider());
    await runAsUser(randomUUID(), () => readProvider());
    await tick();
    expect(warnings.length).toBe(count + 1);
    expect(warnings.at(-1)!.message).toMatch(/legacy-agent\.ts:6:\d+ was routed/);
  });
});
