import { createHash, randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ContextStore,
  adminRouter,
  configureUser,
  getUserLlmInstance,
  runAsUser,
  userContext,
  type AdminContextRow,
  type AdminRouterOptions,
} from '../src/index.js';
import { credentialCorpus, expectNoCredentials, expectRedactedCorpus } from './support/credentials.js';

const SECRET = randomBytes(48).toString('base64url');
const sign = (sub: string, extra: Record<string, unknown> = {}) =>
  jwt.sign({ ...extra, sub }, SECRET, { algorithm: 'HS256', expiresIn: 600 });

class Client {
  closed = false;
  constructor(readonly label: string) {}
  async close(): Promise<void> {
    this.closed = true;
  }
}

const stores: ContextStore[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

function setup(adminOptions: AdminRouterOptions = {}, storeOptions: ConstructorParameters<typeof ContextStore>[0] = {}) {
  const built: Client[] = [];
  const store = new ContextStore({
    sweepInterval: 0,
    resources: {
      llmInstance: {
        create: (cfg) => {
          if (cfg.provider === null) return null;
          const c = new Client(`${cfg.provider}/${cfg.model}`);
          built.push(c);
          return c;
        },
      },
    },
    ...storeOptions,
  });
  stores.push(store);
  const admin = adminRouter({ store, ...adminOptions });
  const app = new Koa();
  app.silent = true;
  app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'], passthrough: admin.isPage }));
  app.use(admin);
  let gate: Promise<void> | undefined;
  app.use(async (ctx) => {
    if (ctx.path === '/configure') {
      await configureUser(ctx.query as Record<string, string>);
    }
    getUserLlmInstance();
    if (ctx.path === '/slow') await gate;
    ctx.body = { ok: true };
  });
  const adminId = randomUUID();
  return {
    store,
    built,
    server: app.callback(),
    adminId,
    adminToken: sign(adminId, { role: 'admin' }),
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return release;
    },
  };
}

type Setup = ReturnType<typeof setup>;
const asAdmin = (s: Setup, method: 'get' | 'delete', path: string) =>
  request(s.server)[method](path).set('Authorization', `Bearer ${s.adminToken}`);

async function configure(s: Setup, user: string, fields: Record<string, string>) {
  const qs = new URLSearchParams(fields).toString();
  await request(s.server).get(`/configure?${qs}`).set('Authorization', `Bearer ${sign(user)}`).expect(200);
}

describe('admin access', () => {
  it('401 without a token, 403 for a non-admin, 200 for role or roles admin, on every data route', async () => {
    const s = setup();
    const user = randomUUID();
    await configure(s, user, { provider: 'Google' });
    for (const [method, path] of [['get', '/admin/contexts'], ['get', `/admin/contexts/${user}`], ['delete', `/admin/contexts/${user}`]] as const) {
      const none = await request(s.server)[method](path).expect(401);
      expect(none.body.error).toBe('missing_token');
      const plain = await request(s.server)[method](path).set('Authorization', `Bearer ${sign(user)}`).expect(403);
      expect(plain.body).toEqual({ error: 'forbidden', message: expect.stringContaining('role "admin"') });
      const wrongRole = await request(s.server)[method](path).set('Authorization', `Bearer ${sign(user, { role: 'Admin', roles: 'admin' })}`);
      expect(wrongRole.status).toBe(403);
    }
    expect(s.store.has(user)).toBe(true); // nothing was evicted by the refused DELETEs
    await request(s.server).get('/admin/contexts').set('Authorization', `Bearer ${sign(randomUUID(), { roles: ['ops', 'admin'] })}`).expect(200);
    await asAdmin(s, 'get', '/admin/contexts').expect(200);
  });

  it('takes a custom predicate, sync or async, which sees the claims', async () => {
    const seen: unknown[] = [];
    const s = setup({
      isAdmin: async (claims) => {
        seen.push(claims['scope']);
        return claims['scope'] === 'ops:admin';
      },
    });
    await request(s.server).get('/admin/contexts').set('Authorization', `Bearer ${sign(randomUUID(), { role: 'admin' })}`).expect(403);
    await request(s.server).get('/admin/contexts').set('Authorization', `Bearer ${sign(randomUUID(), { scope: 'ops:admin' })}`).expect(200);
    expect(seen).toEqual([undefined, 'ops:admin']);
  });

  it('serves the page without a token, with a strict CSP whose hashes match its inline script and style', async () => {
    const s = setup({ refreshInterval: 2000 });
    const res = await request(s.server).get('/admin').expect(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-frame-options']).toBe('DENY');
    const csp = res.headers['content-security-policy'] as string;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    const script = /<script>([\s\S]*)<\/script>/.exec(res.text)![1]!;
    const style = /<style>([\s\S]*)<\/style>/.exec(res.text)![1]!;
    const hash = (t: string) => `'sha256-${createHash('sha256').update(t).digest('base64')}'`;
    expect(csp).toContain(`script-src ${hash(script)}`);
    expect(csp).toContain(`style-src ${hash(style)}`);
    expect(res.text).toContain('data-refresh="2000"');
    // Nothing is fetched from elsewhere: no external URL in the page.
    expect(res.text).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    await request(s.server).get('/admin/').expect(200);
    const head = await request(s.server).head('/admin').expect(200);
    expect(head.headers['content-security-policy']).toBe(csp);
  });

  it('a bad token on the page route is still refused by userContext (only anonymous requests pass)', async () => {
    const s = setup();
    const res = await request(s.server).get('/admin').set('Authorization', 'Bearer not.a.jwt').expect(401);
    expect(res.body.error).toBe('invalid_token');
  });
});

describe('GET /admin/contexts', () => {
  it('lists each user with provider, model, MCP server, countdown, in-flight count and live resources', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const s = setup({}, { ttl: 3_600_000 });
    const [a, b] = [randomUUID(), randomUUID()];
    await configure(s, a, { provider: 'Google', model: 'gemini-2.5-flash', mcpServerName: 'Teradata MCP', mcpServerId: 'srv-1' });
    vi.setSystemTime(Date.now() + 60_000);
    await configure(s, b, { provider: 'Anthropic', model: 'claude-3-5-haiku' });
    const release = s.hold();
    const slow = request(s.server).get('/slow').set('Authorization', `Bearer ${sign(b)}`).then((r) => r);
    await vi.waitFor(() => expect(s.store.scopesInFlight).toBe(1));
    vi.setSystemTime(Date.now() + 1_000);
    const res = await asAdmin(s, 'get', '/admin/contexts').expect(200);
    release();
    expect((await slow).status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({ total: 3, size: 3, offset: 0, limit: 50, ttlMs: 3_600_000, viewer: s.adminId, max: 10_000 });
    expect(res.body.requestsInFlight).toBe(2); // the slow request and this one
    const rows = res.body.items as AdminContextRow[];
    expect(rows.map((r) => r.userUuid)).toEqual([s.adminId, b, a]); // most recent first
    const [, rowB, rowA] = rows;
    expect(rowA).toEqual({
      userUuid: a,
      provider: 'Google',
      model: 'gemini-2.5-flash',
      mcpServerName: 'Teradata MCP',
      mcpServerId: 'srv-1',
      lastAccess: expect.any(String),
      expiresInMs: expect.any(Number),
      inFlight: 0,
      version: 1,
      resources: { llmInstance: true, mcpClient: false },
    });
    expect(rowB).toMatchObject({ provider: 'Anthropic', model: 'claude-3-5-haiku', inFlight: 1 });
    // lru-cache caches its clock for a moment: allow a second of slack.
    expect(rowA!.expiresInMs).toBeGreaterThan(3_600_000 - 62_000);
    expect(rowA!.expiresInMs).toBeLessThanOrEqual(3_600_000 - 61_000 + 1_000);
    expect(rowB!.expiresInMs).toBeGreaterThan(3_600_000 - 2_000);
    expect(rowB!.expiresInMs).toBeLessThanOrEqual(3_600_000);
    expect(Date.parse(rowA!.lastAccess)).toBeLessThan(Date.parse(rowB!.lastAccess));
    // Listing does not refresh anyone's inactivity timer.
    vi.setSystemTime(Date.now() + 5_000);
    const again = await asAdmin(s, 'get', `/admin/contexts?q=${a}`).expect(200);
    expect(again.body.items[0].expiresInMs).toBeLessThanOrEqual(rowA!.expiresInMs! - 4_000);
  });

  it('reports expiresInMs null when the store has no TTL', async () => {
    const s = setup({}, { ttl: 0 });
    await configure(s, randomUUID(), { provider: 'Google' });
    const res = await asAdmin(s, 'get', '/admin/contexts?provider=Google').expect(200);
    expect(res.body.ttlMs).toBeNull();
    expect(res.body.items[0].expiresInMs).toBeNull();
  });

  it('filters by provider, model, MCP server, text and in-flight, and pages 10 000 users without gaps or repeats', async () => {
    const s = setup({ maxPageSize: 1000 }, { max: 20_000 });
    const providers = ['Google', 'Anthropic', 'OpenAI', 'Amazon'];
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const id = randomUUID();
      ids.push(id);
      s.store.commit(id, { provider: providers[i % 4]!, model: `model-${i % 10}`, mcpServerName: i % 100 === 0 ? 'Teradata MCP' : null });
    }
    const all = await asAdmin(s, 'get', '/admin/contexts?limit=1').expect(200);
    expect(all.body.total).toBe(10_001); // plus the admin
    const google = await asAdmin(s, 'get', '/admin/contexts?provider=Google&limit=1').expect(200);
    expect(google.body.total).toBe(2_500);
    const both = await asAdmin(s, 'get', '/admin/contexts?provider=Google&model=model-4&limit=1000').expect(200);
    expect(both.body.total).toBe(500);
    expect((both.body.items as AdminContextRow[]).every((r) => r.provider === 'Google' && r.model === 'model-4')).toBe(true);
    const mcp = await asAdmin(s, 'get', '/admin/contexts?mcpServer=Teradata%20MCP').expect(200);
    expect(mcp.body.total).toBe(100);
    const text = await asAdmin(s, 'get', '/admin/contexts?q=ANTHROPIC&limit=1').expect(200);
    expect(text.body.total).toBe(2_500);
    const one = await asAdmin(s, 'get', `/admin/contexts?q=${ids[1234]!.slice(0, 23)}`).expect(200);
    expect(one.body.items.map((r: AdminContextRow) => r.userUuid)).toContain(ids[1234]);
    const busy = await asAdmin(s, 'get', '/admin/contexts?inFlight=true').expect(200);
    expect(busy.body.items.map((r: AdminContextRow) => r.userUuid)).toEqual([s.adminId]); // only the admin's own request

    const seen = new Set<string>();
    for (let offset = 0; offset < 10_001; offset += 1000) {
      const page = await asAdmin(s, 'get', `/admin/contexts?sort=userUuid&limit=1000&offset=${offset}`).expect(200);
      for (const r of page.body.items as AdminContextRow[]) seen.add(r.userUuid);
      const uuids = (page.body.items as AdminContextRow[]).map((r) => r.userUuid);
      expect(uuids).toEqual([...uuids].sort());
    }
    expect(seen.size).toBe(10_001);
    const past = await asAdmin(s, 'get', '/admin/contexts?offset=20000').expect(200);
    expect(past.body).toMatchObject({ total: 10_001, items: [] });
    const desc = await asAdmin(s, 'get', '/admin/contexts?sort=provider&order=desc&limit=1').expect(200);
    expect(desc.body.items[0].provider).toBe('OpenAI');
  });

  it('answers 400 invalid_query for bad parameters', async () => {
    const s = setup();
    for (const qs of ['limit=0', 'limit=501', 'limit=abc', 'offset=-1', 'sort=password', 'order=up', 'inFlight=yes', 'limit=1&limit=2', 'color=red', `q=${'x'.repeat(201)}`]) {
      const res = await asAdmin(s, 'get', `/admin/contexts?${qs}`);
      expect(res.status, qs).toBe(400);
      expect(res.body.error, qs).toBe('invalid_query');
      expect(res.body.message.length, qs).toBeGreaterThan(10);
    }
  });
});

describe('GET /admin/contexts/:uuid', () => {
  it('returns the context with secrets redacted, including keys marked secret', async () => {
    const s = setup({ secretKeys: ['sessionCookie'] });
    const user = randomUUID();
    s.store.commit(user, {
      provider: 'Azure',
      model: 'gpt-4o',
      azureDeploymentDetails: { endpoint: 'https://example.invalid', apiKey: 'sk-azure-secret' },
      friendliDetails: { endpointUrl: 'https://f.invalid', token: 'friendli-secret' },
      serverConfigs: { teradata: { url: 'http://127.0.0.1:9', password: 'pw-secret', sessionCookie: 'cookie-secret' } },
    });
    const res = await asAdmin(s, 'get', `/admin/contexts/${user.toUpperCase()}`).expect(200);
    expect(res.body).toMatchObject({ userUuid: user, provider: 'Azure', model: 'gpt-4o', inFlight: 0 });
    expect(res.body.context.azureDeploymentDetails).toEqual({ endpoint: 'https://example.invalid', apiKey: '[redacted]' });
    expect(res.body.context.friendliDetails.token).toBe('[redacted]');
    expect(res.body.context.serverConfigs.teradata).toEqual({ url: 'http://127.0.0.1:9', password: '[redacted]', sessionCookie: '[redacted]' });
    expect(res.text).not.toMatch(/secret"/);
  });

  it('redacts credentials by name and inside values, nested, in serverConfigs and app fields (the corpus)', async () => {
    const s = setup();
    const user = randomUUID();
    const servers = credentialCorpus();
    const app = credentialCorpus();
    s.store.commit(user, { provider: 'OpenAI', serverConfigs: { crm: servers.config }, integrations: app.config } as never); // integrations: an app field
    const res = await asAdmin(s, 'get', `/admin/contexts/${user}`).expect(200);
    expectNoCredentials(res.text, servers);
    expectNoCredentials(res.text, app);
    const { serverConfigs, integrations } = res.body.context;
    for (const view of [serverConfigs.crm, serverConfigs.crm.nested.list[0], integrations, integrations.nested.list[0]]) {
      expectRedactedCorpus(view);
    }
    expect(res.body.provider).toBe('OpenAI');
  });

  it('404 for an unknown user, 400 for an invalid id, 405 for another method', async () => {
    const s = setup();
    const missing = await asAdmin(s, 'get', `/admin/contexts/${randomUUID()}`).expect(404);
    expect(missing.body.error).toBe('context_not_found');
    const bad = await asAdmin(s, 'get', '/admin/contexts/not-a-uuid').expect(400);
    expect(bad.body.error).toBe('invalid_user_id');
    const badEncoding = await asAdmin(s, 'get', '/admin/contexts/%E0%A4%A').expect(400);
    expect(badEncoding.body.error).toBe('invalid_user_id');
    const put = await request(s.server).put(`/admin/contexts/${randomUUID()}`).set('Authorization', `Bearer ${s.adminToken}`).expect(405);
    expect(put.headers['allow']).toBe('GET, HEAD, DELETE');
    expect(put.body.error).toBe('method_not_allowed');
    const post = await request(s.server).post('/admin/contexts').set('Authorization', `Bearer ${s.adminToken}`).expect(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
    const nowhere = await asAdmin(s, 'get', '/admin/nowhere').expect(404);
    expect(nowhere.body.error).toBe('not_found');
  });

  it('does not swallow other routes that merely start like the prefix', async () => {
    const s = setup();
    const res = await request(s.server).get('/administrator').set('Authorization', `Bearer ${sign(randomUUID())}`).expect(200);
    expect(res.body).toEqual({ ok: true });
  });
});

describe('DELETE /admin/contexts/:uuid', () => {
  it('evicts the context; its client is disposed only once the request holding it ends', async () => {
    const s = setup();
    const [a, b] = [randomUUID(), randomUUID()];
    await configure(s, a, { provider: 'Google', model: 'gemini-2.5-flash' });
    await configure(s, b, { provider: 'Anthropic', model: 'claude-3-5-haiku' });
    const release = s.hold();
    const slow = request(s.server).get('/slow').set('Authorization', `Bearer ${sign(a)}`).then((r) => r);
    await vi.waitFor(() => expect(s.store.scopesInFlight).toBe(1));
    const res = await asAdmin(s, 'delete', `/admin/contexts/${a}`).expect(200);
    expect(res.body).toMatchObject({ evicted: true, userUuid: a, inFlight: 1 });
    expect(s.store.has(a)).toBe(false);
    const clientA = s.built.find((c) => c.label === 'Google/gemini-2.5-flash')!;
    expect(clientA.closed).toBe(false); // the slow request still uses it
    release();
    expect((await slow).status).toBe(200);
    await vi.waitFor(() => expect(clientA.closed).toBe(true));
    expect(s.built.find((c) => c.label === 'Anthropic/claude-3-5-haiku')!.closed).toBe(false);
    const list = await asAdmin(s, 'get', '/admin/contexts').expect(200);
    expect(list.body.items.map((r: AdminContextRow) => r.userUuid)).not.toContain(a);
    expect(list.body.items.map((r: AdminContextRow) => r.userUuid)).toContain(b);
    const twice = await asAdmin(s, 'delete', `/admin/contexts/${a}`).expect(404);
    expect(twice.body.error).toBe('context_not_found');
  });

  it('evicts the right users while many users keep making requests', async () => {
    const s = setup();
    const users = Array.from({ length: 12 }, () => randomUUID());
    await Promise.all(users.map((u, i) => configure(s, u, { provider: i % 2 ? 'Google' : 'Anthropic', model: `m${i}` })));
    const victims = users.filter((_, i) => i % 3 === 0);
    const traffic = users.filter((u) => !victims.includes(u)).flatMap((u) =>
      Array.from({ length: 4 }, () => request(s.server).get('/').set('Authorization', `Bearer ${sign(u)}`).expect(200)),
    );
    const evictions = victims.map((u) => asAdmin(s, 'delete', `/admin/contexts/${u}`).expect(200));
    await Promise.all([...traffic, ...evictions]);
    for (const u of users) expect(s.store.has(u)).toBe(!victims.includes(u));
    const label = (i: number) => `${i % 2 ? 'Google' : 'Anthropic'}/m${i}`;
    const expected = users.flatMap((u, i) => (victims.includes(u) ? [label(i)] : [])).sort();
    await vi.waitFor(() => expect(s.built.filter((c) => c.closed).map((c) => c.label).sort()).toEqual(expected));
  });
});

describe('adminRouter options', () => {
  it('validates them with a TypeError naming the option', () => {
    expect(() => adminRouter({ prefix: 'admin' })).toThrow(/options\.prefix/);
    expect(() => adminRouter({ prefix: '/admin/' })).toThrow(/options\.prefix/);
    expect(() => adminRouter({ isAdmin: true as never })).toThrow(/options\.isAdmin/);
    expect(() => adminRouter({ refreshInterval: 10 })).toThrow(/options\.refreshInterval/);
    expect(() => adminRouter({ maxPageSize: 0 })).toThrow(/options\.maxPageSize/);
    expect(() => adminRouter({ secretKeys: [''] })).toThrow(/options\.secretKeys/);
    expect(() => adminRouter({ stateKey: '' })).toThrow(/options\.stateKey/);
  });

  it('mounts under another prefix and can turn the page off', async () => {
    const s = setup({ prefix: '/ops/kuc', dashboard: false });
    await request(s.server).get('/ops/kuc').expect(401); // no page: userContext refuses the anonymous request
    const noPage = await request(s.server).get('/ops/kuc').set('Authorization', `Bearer ${s.adminToken}`).expect(404);
    expect(noPage.body.error).toBe('not_found');
    const list = await request(s.server).get('/ops/kuc/contexts').set('Authorization', `Bearer ${s.adminToken}`).expect(200);
    expect(list.body.total).toBe(1);
  });
});
