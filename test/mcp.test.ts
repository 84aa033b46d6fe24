import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMcpServer, type RunningMcpServer } from '../examples/mcp-servers.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { referenceServerBin } from '../examples/mcp-servers.js';
import { ContextStore, McpConnectError, McpInvalidAnswerError, configureUser, runAsUser, runWithProfile, setUserMcpClient, userContext } from '../src/index.js';
import { freePort } from './helpers/redis.js';
import { SECRET, tokenFor } from './support/tokens.js';
import {
  UserMcpConnection,
  callUserMcpTool,
  createMcpClientFactory,
  getUserMcpConnection,
  getUserMcpTools,
  isMcpClientLike,
  type McpClientLike,
} from '../src/mcp.js';

const ALPHA_TOOLS = [
  { name: 'alpha_search', description: 'search alpha' },
  { name: 'alpha_fetch', description: 'fetch alpha' },
];
const BETA_TOOLS = [
  { name: 'beta_lookup', description: 'lookup beta' },
  { name: 'beta_write', description: 'write beta' },
  { name: 'beta_delete', description: 'delete beta' },
];

let alpha: RunningMcpServer;
let beta: RunningMcpServer;
const registry = new Map<string, string>();
const stores: ContextStore[] = [];

/** An object with the SDK Client's surface that answers what it is told to. */
function lookAlike(answers: { listTools?: unknown; callTool?: unknown }): McpClientLike {
  return {
    listTools: async () => answers.listTools as never,
    callTool: async () => answers.callTool,
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const jitter = () => delay(Math.random() * 8);
const names = (tools: readonly { name: string }[]) => tools.map((t) => t.name).sort();

function newStore(): ContextStore {
  const store = new ContextStore({
    resources: {
      mcpClient: createMcpClientFactory({
        resolveServer: (config) => {
          const url = config.mcpServerName === null ? undefined : registry.get(config.mcpServerName);
          return url === undefined ? null : { url, name: config.mcpServerName! };
        },
        connectTimeout: 3000,
      }),
    },
  });
  stores.push(store);
  return store;
}

beforeAll(async () => {
  [alpha, beta] = await Promise.all([startMcpServer('alpha', ALPHA_TOOLS), startMcpServer('beta', BETA_TOOLS)]);
  registry.set('alpha', alpha.url);
  registry.set('beta', beta.url);
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await Promise.all([alpha?.close(), beta?.close()]);
});

describe('createMcpClientFactory', () => {
  it('validates its options', () => {
    expect(() => createMcpClientFactory(undefined as never)).toThrow(TypeError);
    expect(() => createMcpClientFactory({} as never)).toThrow(/resolveServer/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, connectTimeout: 0 })).toThrow(/connectTimeout/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, clientInfo: { name: 1 } as never })).toThrow(/clientInfo/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, maxConnection: 3 } as never)).toThrow(/unknown option "maxConnection".*maxConnections/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, backoff: { delay: 1 } } as never)).toThrow(/delay/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, servers: {} })).toThrow(/not both/);
    expect(() => createMcpClientFactory({ resolveServer: () => null, killTimeout: -1 })).toThrow(/killTimeout/);
  });

  it('validates the targets resolveServer returns', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ url: 'http://x/mcp', command: 'node' }, /both url and command/],
      [{ command: '' }, /command/],
      [{ command: 'node', args: [1] }, /args/],
      [{ command: 'node', env: { A: 1 } }, /env/],
      [{ url: 'http://x/mcp', headers: { a: 1 } }, /headers/],
      [{ name: 'x' }, /\{ url \}.*\{ command \}/],
    ];
    for (const [target, message] of bad) {
      const store = new ContextStore({ resources: { mcpClient: createMcpClientFactory({ resolveServer: () => target as never }) } });
      stores.push(store);
      await runAsUser(randomUUID(), async () => {
        await configureUser({ mcpServerName: 'x' });
        await expect(getUserMcpConnection()).rejects.toThrow(message);
      }, { store });
    }
  });

  it('gives no client to a user without an MCP server', async () => {
    const store = newStore();
    await runAsUser(randomUUID(), async () => {
      expect(await getUserMcpConnection()).toBeNull();
      expect(await getUserMcpTools()).toEqual([]);
      await expect(callUserMcpTool('alpha_search')).rejects.toBeInstanceOf(McpConnectError);
    }, { store });
  });

  it('rejects a non-http URL from resolveServer', async () => {
    const store = new ContextStore({
      resources: { mcpClient: createMcpClientFactory({ resolveServer: () => 'file:///etc/passwd' }) },
    });
    stores.push(store);
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: 'x' });
      await expect(getUserMcpConnection()).rejects.toThrow(/http\(s\) URL/);
    }, { store });
  });
});

describe('per-user MCP clients with two real servers', () => {
  it('many interleaved users each see only their own server\'s tools, one session per user', async () => {
    const store = newStore();
    const alphaBefore = alpha.opened;
    const betaBefore = beta.opened;
    const listBefore = { alpha: alpha.requests.get('tools/list') ?? 0, beta: beta.requests.get('tools/list') ?? 0 };
    const users = Array.from({ length: 24 }, (_, i) => ({ uuid: randomUUID(), server: i % 2 === 0 ? 'alpha' : 'beta' }));
    // Every user configures their server at the same time…
    await Promise.all(users.map((u) => runAsUser(u.uuid, async () => {
      await jitter();
      await configureUser({ mcpServerName: u.server });
    }, { store })));
    // …then all their queries run interleaved.
    const seen = await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 4 }, () =>
          runAsUser(u.uuid, async () => {
            await jitter();
            const tools = await getUserMcpTools();
            await jitter();
            const connection = await getUserMcpConnection();
            const called = await callUserMcpTool(names(tools)[0]!, { input: u.uuid });
            return { u, tools: names(tools), server: connection?.serverName, called };
          }, { store }),
        ),
      ),
    );
    for (const { u, tools, server, called } of seen) {
      expect(server).toBe(u.server);
      expect(tools).toEqual(names(u.server === 'alpha' ? ALPHA_TOOLS : BETA_TOOLS));
      const text = (called.content as { type: string; text: string }[])[0]!.text;
      expect(text.startsWith(`${u.server}.`)).toBe(true);
      expect(text).toContain(u.uuid);
    }
    // One MCP session per user (single-flight build), and one tools/list per user (cached catalog).
    expect(alpha.opened - alphaBefore).toBe(12);
    expect(beta.opened - betaBefore).toBe(12);
    expect((alpha.requests.get('tools/list') ?? 0) - listBefore.alpha).toBe(12);
    expect((beta.requests.get('tools/list') ?? 0) - listBefore.beta).toBe(12);
  });

  it('evicting a user closes their connection on the server, only after their in-flight request ends', async () => {
    const store = newStore();
    const a = randomUUID();
    const b = randomUUID();
    await runAsUser(a, () => configureUser({ mcpServerName: 'alpha' }), { store });
    await runAsUser(b, () => configureUser({ mcpServerName: 'alpha' }), { store });
    const sessionOf = (user: string) =>
      runAsUser(user, async () => (await getUserMcpConnection())!.sessionId, { store });
    const [sa, sb] = await Promise.all([sessionOf(a), sessionOf(b)]);
    expect(sa).toBeTypeOf('string');
    expect(sa).not.toBe(sb);
    const open = alpha.openSessions;
    const closed = alpha.closed;

    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const inFlight = runAsUser(a, async () => {
      const connection = await getUserMcpConnection();
      entered();
      await gate;
      // Still usable: the eviction waits for this request.
      const result = await connection!.callTool('alpha_fetch', { input: 'late' });
      return { result, closedBefore: connection!.closed };
    }, { store });
    await inside;
    expect(store.evict(a)).toBe(true);
    await delay(50);
    expect(alpha.openSessions).toBe(open);
    expect(alpha.closed).toBe(closed);
    release();
    const { result, closedBefore } = await inFlight;
    expect(closedBefore).toBe(false);
    expect((result.content as { text: string }[])[0]!.text).toBe('alpha.alpha_fetch(late)');
    await alpha.waitForOpenSessions(open - 1);
    expect(alpha.closed).toBe(closed + 1);
    // B's session is untouched and still works.
    await runAsUser(b, async () => {
      const connection = await getUserMcpConnection();
      expect(connection!.sessionId).toBe(sb);
      expect(names(await connection!.listTools())).toEqual(names(ALPHA_TOOLS));
    }, { store });
  });

  it('switching server closes the old connection and refreshes the catalog', async () => {
    const store = newStore();
    const user = randomUUID();
    const alphaOpen = alpha.openSessions;
    const first = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'alpha' });
      return { tools: names(await getUserMcpTools()), connection: await getUserMcpConnection() };
    }, { store });
    expect(first.tools).toEqual(names(ALPHA_TOOLS));
    expect(alpha.openSessions).toBe(alphaOpen + 1);
    const second = await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'beta' });
      return names(await getUserMcpTools());
    }, { store });
    expect(second).toEqual(names(BETA_TOOLS));
    await alpha.waitForOpenSessions(alphaOpen);
    expect(first.connection!.closed).toBe(true);
    await expect(first.connection!.listTools()).rejects.toThrow(/closed/);
  });

  it('a change that does not touch the MCP fields keeps the same connection', async () => {
    const store = newStore();
    await runAsUser(randomUUID(), async () => {
      await configureUser({ mcpServerName: 'beta', provider: 'Google', model: 'gemini-2.5-flash' });
      const before = await getUserMcpConnection();
      await configureUser({ model: 'gemini-2.5-pro' });
      expect(await getUserMcpConnection()).toBe(before);
      expect(before!.closed).toBe(false);
    }, { store });
  });

  it('a profile override with another server uses its own connection, closed when the override ends', async () => {
    const store = newStore();
    const user = randomUUID();
    const betaOpen = beta.openSessions;
    await runAsUser(user, async () => {
      await configureUser({ mcpServerName: 'alpha' });
      const own = await getUserMcpConnection();
      const inOverride = await runWithProfile({ mcpServerName: 'beta' }, async () => {
        const tools = names(await getUserMcpTools());
        const connection = await getUserMcpConnection();
        return { tools, connection };
      });
      expect(inOverride.tools).toEqual(names(BETA_TOOLS));
      await beta.waitForOpenSessions(betaOpen);
      expect(inOverride.connection!.closed).toBe(true);
      // The user's own connection is untouched.
      expect(await getUserMcpConnection()).toBe(own);
      expect(own!.closed).toBe(false);
      expect(names(await getUserMcpTools())).toEqual(names(ALPHA_TOOLS));
    }, { store });
  });

  it('store.close() closes every user\'s session', async () => {
    const store = newStore();
    const alphaOpen = alpha.openSessions;
    const betaOpen = beta.openSessions;
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        runAsUser(randomUUID(), async () => {
          await configureUser({ mcpServerName: i % 2 ? 'alpha' : 'beta' });
          await getUserMcpTools();
        }, { store }),
      ),
    );
    expect(alpha.openSessions).toBe(alphaOpen + 3);
    expect(beta.openSessions).toBe(betaOpen + 3);
    await store.close();
    await Promise.all([alpha.waitForOpenSessions(alphaOpen), beta.waitForOpenSessions(betaOpen)]);
  });

  it('a server that cannot be reached gives McpConnectError, and the failure is not cached', async () => {
    const down = await startMcpServer('down', ALPHA_TOOLS);
    const downUrl = down.url;
    await down.close();
    registry.set('flaky', downUrl);
    const store = newStore();
    try {
      await runAsUser(randomUUID(), async () => {
        await configureUser({ mcpServerName: 'flaky' });
        const error = await getUserMcpConnection().then(() => null, (e: unknown) => e);
        expect(error).toBeInstanceOf(McpConnectError);
        expect((error as McpConnectError).code).toBe('ERR_MCP_CONNECT_FAILED');
        expect((error as Error).message).toContain('"flaky"');
        registry.set('flaky', beta.url);
        const connection = await getUserMcpConnection();
        expect(connection).toBeInstanceOf(UserMcpConnection);
        expect(names(await connection!.listTools())).toEqual(names(BETA_TOOLS));
      }, { store });
    } finally {
      registry.delete('flaky');
    }
  });
});

describe('credentials in MCP targets never reach an error body', () => {
  it('a connect failure to a URL with a password and an api_key query answers with both masked', async () => {
    const port = await freePort();
    const password = `pw${randomUUID().slice(0, 8)}`;
    const apiKey = `key${randomUUID().slice(0, 8)}`;
    const store = new ContextStore({
      resources: {
        mcpClient: createMcpClientFactory({
          resolveServer: (config) =>
            config.mcpServerName === 'crm'
              ? { name: 'crm', url: `http://app:${password}@127.0.0.1:${port}/mcp?api_key=${apiKey}&tenant=t1` }
              : config.mcpServerName === 'broken'
                ? { name: 'broken', url: `http://app:${password}@[not-a-host/mcp` }
                : null,
          connectTimeout: 2000,
        }),
      },
    });
    stores.push(store);
    const app = new Koa();
    app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
    app.use(async (ctx) => {
      await configureUser({ mcpServerName: String(ctx.query['server']) });
      try {
        await getUserMcpConnection();
        ctx.body = { ok: true };
      } catch (error) {
        // What an app's error handler sends (examples/app.ts: 502 mcp_unavailable with the message).
        ctx.status = error instanceof McpConnectError ? 502 : 500;
        ctx.body = { error: error instanceof McpConnectError ? 'mcp_unavailable' : 'invalid_mcp_target', message: (error as Error).message };
      }
    });
    const handler = app.callback();
    const token = tokenFor(randomUUID());
    const down = await request(handler).get('/?server=crm').set('Authorization', `Bearer ${token}`);
    expect(down.status).toBe(502);
    expect(down.body.message).toContain(`http://app:[redacted]@127.0.0.1:${port}/mcp?api_key=[redacted]&tenant=t1`);
    const broken = await request(handler).get('/?server=broken').set('Authorization', `Bearer ${token}`);
    expect(broken.status).toBe(500);
    expect(broken.body.message).toContain('http://app:[redacted]@');
    for (const res of [down, broken]) {
      expect(res.text).not.toContain(password);
      expect(res.text).not.toContain(apiKey);
    }
  });
});

describe('helpers with any MCP client (the SDK Client surface)', () => {
  it('getUserMcpTools() and callUserMcpTool() use a Client handed over with setUserMcpClient(), over HTTP or stdio', async () => {
    const store = new ContextStore();
    stores.push(store);
    const http = new Client({ name: 'own-http', version: '1.0.0' });
    await http.connect(new StreamableHTTPClientTransport(new URL(alpha.url)));
    const stdio = new Client({ name: 'own-stdio', version: '1.0.0' });
    await stdio.connect(new StdioClientTransport({ command: process.execPath, args: [referenceServerBin('server-everything'), 'stdio'], stderr: 'ignore' }));
    const [a, b] = [randomUUID(), randomUUID()];
    await runAsUser(a, () => setUserMcpClient(http as never), { store });
    await runAsUser(b, () => setUserMcpClient(stdio as never), { store });
    const [ta, tb] = await Promise.all([
      runAsUser(a, async () => ({ tools: names(await getUserMcpTools()), called: await callUserMcpTool('alpha_search', { input: a }) }), { store }),
      runAsUser(b, async () => ({ tools: names(await getUserMcpTools()), called: await callUserMcpTool('echo', { message: b }) }), { store }),
    ]);
    expect(ta.tools).toEqual(names(ALPHA_TOOLS));
    expect((ta.called.content as { text: string }[])[0]!.text).toBe(`alpha.alpha_search(${a})`);
    expect(tb.tools).toContain('get-env');
    expect((tb.called.content as { text: string }[])[0]!.text).toBe(`Echo: ${b}`);
    // getUserMcpConnection() is specific to the factory and says what to use instead.
    await runAsUser(a, async () => {
      await expect(getUserMcpConnection()).rejects.toThrow(/getUserMcpClient\(\)/);
    }, { store });
    await store.close(); // disposes both clients (close())
  });

  it('a look-alike client that answers something else fails with McpInvalidAnswerError naming the method and what came back', async () => {
    const store = new ContextStore();
    stores.push(store);
    const tool = { name: 'echo', inputSchema: { type: 'object' as const } };
    let pagesAsked = 0;
    const cases: Array<{ client: McpClientLike; call: 'tools' | 'call'; says: RegExp[] }> = [
      // The SDK's answer with a typo'd key (was: "page.tools is not iterable").
      { client: lookAlike({ listTools: { tool: [tool] } }), call: 'tools', says: [/listTools\(\) resolved to an object with keys \[tool\]/, /\{ tools: Tool\[\]/] },
      // The tools themselves instead of the page.
      { client: lookAlike({ listTools: [tool, tool] }), call: 'tools', says: [/listTools\(\) resolved to an array of 2/] },
      // Tool names instead of tools (was: a "tool list" of strings).
      { client: lookAlike({ listTools: { tools: ['echo'] } }), call: 'tools', says: [/listTools\(\) answered tools\[0\] as a string, not a Tool/] },
      // Paging that never ends (was: an endless loop).
      {
        client: {
          listTools: async () => {
            if (++pagesAsked > 50) throw new Error('looped');
            return { tools: [tool], nextCursor: 'again' };
          },
          callTool: async () => ({ content: [] }),
        },
        call: 'tools',
        says: [/listTools\(\{ cursor \}\) gave a nextCursor it gave before \(after 2 tools\)/],
      },
      // A bare value instead of a result (was: handed to the app as a CallToolResult).
      { client: lookAlike({ callTool: 'done' }), call: 'call', says: [/callTool\(\{ name: "echo" \}\) resolved to a string, not \{ content: ContentBlock\[\]/] },
      { client: lookAlike({ callTool: { result: 'done', secretValue: 'hunter2' } }), call: 'call', says: [/resolved to an object with keys \[result, secretValue\]/] },
    ];
    for (const { client, call, says } of cases) {
      await runAsUser(randomUUID(), async () => {
        await setUserMcpClient(client as never);
        const error = await (call === 'tools' ? getUserMcpTools() : callUserMcpTool('echo', { message: 'hi' })).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(McpInvalidAnswerError);
        expect((error as McpInvalidAnswerError).code).toBe('ERR_MCP_INVALID_ANSWER');
        for (const pattern of says) expect((error as Error).message).toMatch(pattern);
        expect((error as Error).message).not.toContain('hunter2');
      }, { store });
    }
    expect(pagesAsked).toBe(2);
    // A look-alike that answers as the SDK does is served as before.
    await runAsUser(randomUUID(), async () => {
      await setUserMcpClient(lookAlike({ listTools: { tools: [tool] }, callTool: { content: [{ type: 'text', text: 'hi' }] } }) as never);
      expect(await getUserMcpTools()).toEqual([tool]);
      expect(await callUserMcpTool('echo')).toEqual({ content: [{ type: 'text', text: 'hi' }] });
    }, { store });
  });

  it('a value without listTools()/callTool() gets a TypeError that says what is expected', async () => {
    const store = new ContextStore();
    stores.push(store);
    await runAsUser(randomUUID(), async () => {
      await setUserMcpClient({ close() {} } as never);
      await expect(getUserMcpTools()).rejects.toThrow(/listTools\(\)\/callTool\(\)/);
      expect(isMcpClientLike({ listTools() {}, callTool() {} })).toBe(true);
    }, { store });
  });
});
