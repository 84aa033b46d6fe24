/**
 * The example app on real AI SDK clients against the local wire server:
 * 50 users on mixed providers with their own keys, 10 rotating key or model
 * mid-run, checked call by call against a client-side ledger; a client
 * disconnect aborts the upstream stream for every provider; a missing key is
 * an error and no call is made; a credential never leaves the process in
 * clear (responses, admin API, log lines, events, Redis values).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp, createLogger, createSharedStore, createStore } from '../../examples/app.js';
import { exampleLlmRegistry } from '../../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireCall, type WireServer } from '../../examples/providers/wire-server.js';
import { generateSecret, mintToken } from '../../examples/tokens.js';
import { configureUser, runAsUser, type ContextStore, type ResourceSpec } from '../../src/index.js';
import type { LlmRegistry, RegistryLlmInstance } from '../../src/ai.js';
import { REDIS_URL, adminClient, deletePrefix, requireRedis } from '../helpers/redis.js';

const secret = generateSecret();
let wire: WireServer;
beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 2, words: 8 });
});
afterAll(async () => {
  await wire.close();
});

const jitter = (max = 8) => new Promise<void>((r) => setTimeout(r, Math.random() * max));

interface Running {
  base: string;
  store: ContextStore;
  close(): Promise<void>;
}

async function listen(app: { listen: (port: number, host: string) => Server }, store: ContextStore): Promise<Running> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    store,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}

async function call(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('json') ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  return { status: res.status, text, json };
}

/** A spec that counts builds per configuration and disposals per client. */
function counting(llms: LlmRegistry) {
  const base = llms.resource();
  const builds = new Map<string, number>();
  const disposals = new Map<unknown, number>();
  const spec: ResourceSpec<RegistryLlmInstance> = {
    ...base,
    create: (config, userUuid) => {
      const id = `${userUuid} ${config.provider}/${config.model} ${keyFingerprint(config.llmCredentials?.apiKey ?? '')}`;
      builds.set(id, (builds.get(id) ?? 0) + 1);
      return base.create!(config, userUuid);
    },
    dispose: (client, userUuid) => {
      disposals.set(client, (disposals.get(client) ?? 0) + 1);
      return base.dispose!(client, userUuid);
    },
  };
  return { spec, builds, disposals };
}

/** What each provider needs besides a model and a key, and the label its calls carry on the wire. */
const PROVIDERS = [
  { provider: 'OpenAI', label: 'openai', models: ['gpt-4o-mini', 'gpt-4.1'], extra: {} },
  { provider: 'Anthropic', label: 'anthropic', models: ['claude-3-5-haiku', 'claude-sonnet-4-0'], extra: {} },
  { provider: 'Google', label: 'google', models: ['gemini-2.5-flash', 'gemini-2.5-pro'], extra: {} },
  { provider: 'Amazon', label: 'bedrock', models: ['amazon.nova-lite-v1:0', 'anthropic.claude-3-haiku-20240307-v1:0'], extra: { awsRegion: 'us-east-1' } },
  { provider: 'Azure', label: 'azure', models: ['gpt-4o-prod', 'gpt-4o-mini-prod'], extra: { azureDeploymentDetails: { apiVersion: '2024-10-21' } } },
  { provider: 'Friendli', label: 'friendli', models: ['meta-llama-3.1-8b-instruct'], extra: {} },
  { provider: 'Ollama', label: 'ollama', models: ['llama3.2', 'qwen2.5'], extra: {} },
] as const;

interface Config {
  provider: string;
  label: string;
  model: string;
  key: string;
  body: Record<string, unknown>;
}

function configOf(p: (typeof PROVIDERS)[number], model: string, key: string): Config {
  return { provider: p.provider, label: p.label, model, key, body: { provider: p.provider, model, ...p.extra, llmCredentials: { apiKey: key } } };
}

describe('example app on real SDK clients: 50 users, mixed providers, own keys, rotations mid-run', () => {
  it('0 calls with another user\'s key or model, 0 with a key older than the last acknowledged rotation; one client per configuration, disposed once', async () => {
    const llms = exampleLlmRegistry(wire.url);
    const { spec, builds, disposals } = counting(llms);
    const { app, store } = createApp({ secret, llms, store: createStore({ resources: { llmInstance: spec } }, undefined, llms) });
    const running = await listen(app, store);
    wire.reset();
    const users = Array.from({ length: 50 }, (_, i) => {
      const uuid = randomUUID();
      const p = PROVIDERS[i % PROVIDERS.length]!;
      const configs: Config[] = [configOf(p, p.models[0], `sk-${i}-0-${randomBytes(12).toString('hex')}`)];
      return { i, uuid, token: mintToken(secret, uuid), configs, acked: -1, rotates: i < 10 };
    });
    // The 10 rotating users: 3 changes each (key only, model, provider — in an order that varies).
    for (const u of users.filter((x) => x.rotates)) {
      for (let r = 1; r <= 3; r++) {
        const prev = u.configs[r - 1]!;
        const p = PROVIDERS.find((x) => x.provider === prev.provider)!;
        const kind = (u.i + r) % 3;
        const key = `sk-${u.i}-${r}-${randomBytes(12).toString('hex')}`;
        if (kind === 0 || p.models.length === 1) u.configs.push(configOf(p, prev.model, key));
        else if (kind === 1) u.configs.push(configOf(p, p.models.find((m) => m !== prev.model)!, key));
        else {
          const q = PROVIDERS[(PROVIDERS.indexOf(p) + 1) % PROVIDERS.length]!;
          u.configs.push(configOf(q, q.models[0], key));
        }
      }
    }
    // Everyone configures (concurrently); a configuration counts once acknowledged.
    await Promise.all(users.map(async (u) => {
      await jitter();
      const res = await call(running.base, u.token, 'POST', '/configure', u.configs[0]!.body);
      expect(res.status, res.text).toBe(200);
      expect(res.text).not.toContain(u.configs[0]!.key);
      u.acked = 0;
    }));

    const ledger: Array<{ user: (typeof users)[number]; prompt: string; minAllowed: number; ackedAtEnd: number; status: number; answer: string; stream: boolean }> = [];
    const failures: string[] = [];
    const queries = users.flatMap((u) => Array.from({ length: 8 }, (_, n) => ({ u, n })));
    queries.sort(() => Math.random() - 0.5);
    const rotations = users.filter((u) => u.rotates).map(async (u) => {
      for (let r = 1; r < u.configs.length; r++) {
        await jitter(600);
        const res = await call(running.base, u.token, 'POST', '/configure', u.configs[r]!.body);
        if (res.status !== 200) failures.push(`rotation ${u.i}/${r}: ${res.status} ${res.text}`);
        else u.acked = r;
      }
    });
    const sends = queries.map(async ({ u, n }) => {
      await jitter(2000);
      const prompt = `q ${u.uuid} ${n}`;
      const stream = n % 4 === 3;
      const minAllowed = u.acked;
      const res = await call(running.base, u.token, 'POST', '/query', { prompt, stream });
      ledger.push({ user: u, prompt, minAllowed, ackedAtEnd: u.acked, status: res.status, answer: res.text, stream });
    });
    await Promise.all([...rotations, ...sends]);
    expect(failures).toEqual([]);

    // Every query against the wire server's own record of its call.
    const byPrompt = new Map<string, WireCall>(wire.calls.map((c) => [c.prompt, c]));
    const keyOwner = new Map<string, { user: number; index: number }>();
    for (const u of users) u.configs.forEach((c, index) => keyOwner.set(keyFingerprint(c.key), { user: u.i, index }));
    let crossUser = 0;
    let stale = 0;
    /** Calls that ran on the configuration their request started with while a rotation was acknowledged meanwhile. */
    let inFlightAcrossRotation = 0;
    let rotatedKeyCalls = 0;
    for (const entry of ledger) {
      expect(entry.status, entry.answer).toBe(200);
      const onWire = byPrompt.get(entry.prompt);
      if (onWire === undefined) {
        failures.push(`no wire call for ${entry.prompt}`);
        continue;
      }
      const owner = keyOwner.get(onWire.keyHash ?? '');
      if (owner === undefined || owner.user !== entry.user.i) {
        crossUser++;
        continue;
      }
      const config = entry.user.configs[owner.index]!;
      if (onWire.model !== config.model || onWire.label !== config.label) crossUser++;
      if (owner.index < entry.minAllowed) stale++;
      if (owner.index < entry.ackedAtEnd) inFlightAcrossRotation++;
      if (owner.index > 0) rotatedKeyCalls++;
      // The answer the user got came from that call, and never shows the key.
      if (!entry.answer.includes(`key:${onWire.keyHash}`) || entry.answer.includes(config.key)) failures.push(`answer of ${entry.prompt}`);
    }
    expect(failures).toEqual([]);
    expect(ledger).toHaveLength(400);
    expect(wire.calls).toHaveLength(400);
    expect({ crossUser, stale }).toEqual({ crossUser: 0, stale: 0 });
    expect(rotatedKeyCalls).toBeGreaterThan(0);
    // The rotating users did reach the wire with their last key.
    for (const u of users.filter((x) => x.rotates)) expect(u.acked).toBe(3);

    // One client per configuration, each disposed exactly once.
    expect([...builds.values()].filter((n) => n !== 1)).toEqual([]);
    await running.close();
    expect(disposals.size).toBe(builds.size);
    expect([...disposals.values()].every((n) => n === 1)).toBe(true);
    console.info(
      `[ai-app] ${wire.calls.length} calls (${wire.calls.filter((c) => c.stream).length} streamed), ` +
        `${users.filter((u) => u.rotates).length * 3} rotations acknowledged, ${builds.size} clients built and disposed once, ` +
        `${rotatedKeyCalls} calls on a rotated configuration, ${inFlightAcrossRotation} in flight across a rotation (kept their snapshot), ` +
        `${crossUser} cross-user calls, ${stale} stale-key calls`,
    );
  }, 120_000);
});

describe('example app on real SDK clients: disconnects, missing keys', () => {
  let running: Running;
  let llms: LlmRegistry;
  beforeAll(async () => {
    llms = exampleLlmRegistry(wire.url);
    const { app, store } = createApp({ secret, llms });
    running = await listen(app, store);
  });
  afterAll(async () => {
    await running.close();
  });

  it.each(PROVIDERS.map((p) => ({ ...p })))('$provider: a client that disconnects mid-stream aborts the upstream stream', async (p) => {
    const uuid = randomUUID();
    const token = mintToken(secret, uuid);
    const cfg = configOf(p, p.models[0], `sk-abort-${randomBytes(8).toString('hex')}`);
    expect((await call(running.base, token, 'POST', '/configure', cfg.body)).status).toBe(200);
    const baseline = running.store.scopesInFlight;
    const prompt = `abort ${uuid} ${Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ')}`;
    const longWire = await startWireServer({ tokenDelayMs: 15, words: 200 });
    // A second registry on a slow wire, so the stream is long enough to cut.
    const slow = createApp({ secret, llms: exampleLlmRegistry(longWire.url) });
    const slowRunning = await listen(slow.app, slow.store);
    try {
      expect((await call(slowRunning.base, token, 'POST', '/configure', cfg.body)).status).toBe(200);
      const controller = new AbortController();
      const res = await fetch(`${slowRunning.base}/query`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prompt, stream: true }),
        signal: controller.signal,
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      let seen = '';
      while (!seen.includes('event: token')) seen += new TextDecoder().decode((await reader.read()).value);
      controller.abort();
      await reader.closed.catch(() => undefined);
      expect(longWire.calls).toHaveLength(1);
      const upstream = await longWire.settled(longWire.calls[0]!.id);
      expect({ label: upstream.label, aborted: upstream.aborted, finished: upstream.finished }).toEqual({ label: p.label, aborted: true, finished: false });
      const until = Date.now() + 3000;
      while (slowRunning.store.scopesInFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      expect(slowRunning.store.scopesInFlight).toBe(0);
    } finally {
      await slowRunning.close();
      await longWire.close();
    }
    expect(running.store.scopesInFlight).toBe(baseline);
  });

  it('a profile that switches provider does not take the user\'s key along: 400 missing_credentials, no call', async () => {
    const uuid = randomUUID();
    const token = mintToken(secret, uuid);
    const apiKey = `sk-openai-${randomBytes(8).toString('hex')}`;
    expect((await call(running.base, token, 'POST', '/configure', { provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey } })).status).toBe(200);
    const before = wire.calls.length;
    const q = await call(running.base, token, 'POST', '/query', { prompt: `profile ${uuid}`, profile: '@fast' });
    expect({ status: q.status, error: q.json?.['error'] }).toEqual({ status: 400, error: 'missing_credentials' });
    expect(q.text).not.toContain(apiKey);
    // Switching provider without a new key is refused the same way.
    const switched = await call(running.base, token, 'POST', '/configure', { provider: 'Anthropic', model: 'claude-3-5-haiku' });
    expect({ status: switched.status, error: switched.json?.['error'] }).toEqual({ status: 400, error: 'missing_credentials' });
    expect(wire.calls.length).toBe(before);
    const own = await call(running.base, token, 'POST', '/query', { prompt: `own ${uuid}` });
    expect(own.status).toBe(200);
    expect(wire.calls.slice(before).map((c) => [c.label, c.keyHash])).toEqual([['openai', keyFingerprint(apiKey)]]);
  });

  it('a missing key is a 400 with a stable code, and no call is made (not even on the server\'s own key)', async () => {
    vi.stubEnv('OPENAI_API_KEY', 'sk-operator-should-never-be-used');
    vi.stubEnv('GOOGLE_GENERATIVE_AI_API_KEY', 'operator-google');
    const uuid = randomUUID();
    const token = mintToken(secret, uuid);
    const before = wire.calls.length;
    const refused = await call(running.base, token, 'POST', '/configure', { provider: 'OpenAI', model: 'gpt-4o-mini' });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ error: 'missing_credentials' });
    expect(String(refused.json!['message'])).toMatch(/llmCredentials/);
    // Removing the key of a configured user is refused the same way.
    expect((await call(running.base, token, 'POST', '/configure', { provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { apiKey: 'k-1234567890' } })).status).toBe(200);
    const removed = await call(running.base, token, 'POST', '/configure', { llmCredentials: null });
    expect({ status: removed.status, error: removed.json?.['error'] }).toEqual({ status: 400, error: 'missing_credentials' });
    // A configuration stored without a key by other code: the query is refused before any call.
    const other = randomUUID();
    await runAsUser(other, () => configureUser({ provider: 'OpenAI', model: 'gpt-4o-mini' }), { store: running.store });
    for (const stream of [false, true]) {
      const q = await call(running.base, mintToken(secret, other), 'POST', '/query', { prompt: 'hello', stream });
      expect({ status: q.status, error: q.json?.['error'] }).toEqual({ status: 400, error: 'missing_credentials' });
    }
    expect(wire.calls.length).toBe(before);
  });
});

describe('example app on real SDK clients: a provider that refuses', () => {
  it('answers 502 llm_provider_error (or an SSE error event once streaming), never the key nor the provider\'s body', async () => {
    const llms = exampleLlmRegistry(wire.url, { anyModel: true });
    const { app, store } = createApp({ secret, llms });
    const running = await listen(app, store);
    try {
      // 403: not retried by the SDK (a 429 is, with seconds of backoff, then surfaces as a RetryError the app maps the same way)
      for (const [provider, status] of [['OpenAI', 403], ['Anthropic', 403], ['Google', 403]] as const) {
        const uuid = randomUUID();
        const token = mintToken(secret, uuid);
        const apiKey = `sk-refused-${randomBytes(8).toString('hex')}`;
        expect((await call(running.base, token, 'POST', '/configure', { provider, model: `wire-error-${status}`, llmCredentials: { apiKey } })).status).toBe(200);
        const whole = await call(running.base, token, 'POST', '/query', { prompt: 'hi' });
        expect({ status: whole.status, error: whole.json?.['error'] }).toEqual({ status: 502, error: 'llm_provider_error' });
        const streamed = await call(running.base, token, 'POST', '/query', { prompt: 'hi', stream: true });
        expect(streamed.status).toBe(200);
        expect(streamed.text).toMatch(/event: error\ndata: \{"error":"stream_failed"/);
        expect(streamed.text).not.toContain('event: done');
        for (const text of [whole.text, streamed.text]) {
          expect(text).not.toContain(apiKey);
          expect(text).not.toContain('The provider refused');
        }
      }
    } finally {
      await running.close();
    }
  });
});

describe('example app on a Redis store: a credential never leaves the process in clear', () => {
  it('not in responses, the admin API, log lines, events, pub/sub messages, nor Redis values', async () => {
    if (!(await requireRedis('credential encryption at rest'))) return;
    const keyPrefix = `kuc:ai:${randomUUID()}:`;
    const redis = adminClient();
    const sub = adminClient();
    const published: string[] = [];
    await sub.psubscribe(`${keyPrefix}*`);
    sub.on('pmessage', (_p: string, _c: string, message: string) => published.push(message));
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    const llms = exampleLlmRegistry(wire.url);
    const store = createSharedStore({ redis: REDIS_URL, keyPrefix, encryptionKey: randomBytes(32) }, undefined, llms);
    const events: string[] = [];
    for (const name of ['contextLoaded', 'evicted', 'tokenCacheHit', 'tokenCacheMiss', 'tokenRejected', 'storeUnavailable', 'resourceDisposed', 'contextMissing', 'writeFailed'] as const) {
      store.events.on(name, (e) => events.push(`${name} ${JSON.stringify(e)}`));
    }
    const { app } = createApp({ secret, llms, store, logger: createLogger({ level: 'debug' }, sink) });
    const running = await listen(app, store);
    const texts: string[] = [];
    const secrets: string[] = [];
    try {
      expect(await store.whenReady(5_000)).toBe(true);
      const admin = mintToken(secret, randomUUID(), { role: 'admin' });
      const users = [
        { body: (k: string) => ({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey: k } }) },
        { body: (k: string) => ({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey: k } }) },
        { body: (k: string) => ({ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', awsRegion: 'eu-west-1', llmCredentials: { accessKeyId: `AKIA${k}`, secretAccessKey: k } }) },
        { body: (k: string) => ({ provider: 'Azure', model: 'gpt-4o-prod', azureDeploymentDetails: { apiVersion: '2024-10-21', apiKey: k } }) },
      ].map((u) => ({ ...u, uuid: randomUUID(), key: `sk-secret-${randomBytes(16).toString('hex')}` }));
      for (const u of users) {
        secrets.push(u.key);
        const token = mintToken(secret, u.uuid);
        const steps = [
          await call(running.base, token, 'POST', '/configure', u.body(u.key)),
          await call(running.base, token, 'POST', '/query', { prompt: `hello from ${u.uuid}` }),
          await call(running.base, token, 'POST', '/query', { prompt: 'stream please', stream: true }),
          await call(running.base, token, 'GET', '/me/context'),
          await call(running.base, token, 'POST', '/sessions'),
          await call(running.base, admin, 'GET', `/admin/contexts/${u.uuid}`),
        ];
        expect(steps.map((s) => s.status)).toEqual([200, 200, 200, 200, 201, 200]);
        texts.push(...steps.map((s) => s.text));
        // Rotate: the old key must not linger anywhere either.
        const rotated = `sk-secret-${randomBytes(16).toString('hex')}`;
        secrets.push(rotated);
        texts.push((await call(running.base, token, 'POST', '/configure', u.body(rotated))).text);
        texts.push((await call(running.base, token, 'POST', '/query', { prompt: 'after rotation' })).text);
      }
      texts.push((await call(running.base, admin, 'GET', '/admin/contexts')).text);
      texts.push((await call(running.base, admin, 'GET', '/metrics')).text);
      const detail = JSON.parse(texts[5]!) as { context: Record<string, unknown> };
      expect(detail.context['llmCredentials']).toBe('[redacted]');

      // Every value under the prefix, as Redis holds it.
      const values: string[] = [];
      const credentialValues: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
        cursor = next;
        for (const k of keys) {
          const type = await redis.type(k);
          if (type === 'hash') {
            for (const [field, value] of Object.entries(await redis.hgetall(k))) {
              values.push(field, value);
              if (field === 'f:llmCredentials') credentialValues.push(value);
            }
          }
          else if (type === 'string') values.push((await redis.get(k)) ?? '');
          else values.push(`${type}:${k}`);
        }
      } while (cursor !== '0');
      expect(credentialValues.length).toBe(3);
      expect(credentialValues.every((v) => v.startsWith('e1:'))).toBe(true);
      await store.close();
      for (const s of secrets) {
        const where = {
          responses: texts.filter((t) => t.includes(s)).length,
          logs: lines.filter((l) => l.includes(s)).length,
          events: events.filter((e) => e.includes(s)).length,
          pubsub: published.filter((m) => m.includes(s)).length,
          redis: values.filter((v) => v.includes(s)).length,
        };
        expect(where).toEqual({ responses: 0, logs: 0, events: 0, pubsub: 0, redis: 0 });
      }
      expect(lines.length).toBeGreaterThan(20);
      expect(events.length).toBeGreaterThan(5);
      expect(values.length).toBeGreaterThan(8);
    } finally {
      await running.close().catch(() => undefined);
      await deletePrefix(redis, keyPrefix);
      await sub.quit();
      await redis.quit();
    }
  });
});
