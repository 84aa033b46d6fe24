import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../examples/app.js';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import { demoProcesses, runDemo } from '../examples/two-users.js';
import { demoUsage } from '../examples/usage.js';
import type { ContextStore } from '../src/index.js';

let wire: WireServer;
beforeAll(async () => {
  wire = await startWireServer();
});
afterAll(async () => {
  await wire.close();
});

const open: Array<{ server: Server; store: ContextStore }> = [];
afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    server.close();
    await store.close();
  }
});

function start() {
  const secret = generateSecret();
  const { app, store } = createApp({ secret, llms: exampleLlmRegistry(wire.url) });
  const server = app.listen(0, '127.0.0.1');
  open.push({ server, store });
  return { secret, server, store };
}

describe('examples/two-users.ts', () => {
  it('runs every user on their own provider/model, key and MCP server (one over stdio), on real SDK clients, with zero cross-talk', async () => {
    const rows = await runDemo(12);
    expect(rows).toHaveLength(36);
    // Each user's usage equals what the wire reported for their queries; the capped user got 429.
    expect(demoUsage.users.map((u) => [u.user, u.usage.inputTokens + u.usage.outputTokens])).toEqual(demoUsage.users.map((u) => [u.user, u.tokensOnWire]));
    expect(demoUsage.refused).toMatchObject({ user: 'C', status: 429, error: 'usage_limit_exceeded' });
    expect(rows.filter((r) => !r.ok)).toEqual([]);
    expect(new Set(rows.filter((r) => r.user === 'A').map((r) => r.modelOnWire))).toEqual(new Set(['google/gemini-2.5-flash']));
    expect(new Set(rows.filter((r) => r.user === 'B').map((r) => r.modelOnWire))).toEqual(new Set(['anthropic/claude-3-5-haiku']));
    expect(new Set(rows.filter((r) => r.user === 'C').map((r) => r.modelOnWire))).toEqual(new Set(['openai/gpt-4o-mini']));
    // A's rotation: one key before, another after; B's key never changed.
    const aKeys = (phase: number) => new Set(rows.filter((r) => r.user === 'A' && r.phase === phase).map((r) => r.keyOnWire));
    expect(aKeys(1).size).toBe(1);
    expect(aKeys(2).size).toBe(1);
    expect([...aKeys(1)][0]).not.toBe([...aKeys(2)][0]);
    expect(new Set(rows.filter((r) => r.user === 'B').map((r) => r.keyOnWire)).size).toBe(1);
    expect(new Set(rows.filter((r) => r.user === 'A').map((r) => r.ran))).toEqual(new Set(['Google/gemini-2.5-flash']));
    expect(new Set(rows.filter((r) => r.user === 'B').map((r) => r.ran))).toEqual(new Set(['Anthropic/claude-3-5-haiku']));
    expect(new Set(rows.filter((r) => r.user === 'C').flatMap((r) => r.toolCalls.map((c) => c.server)))).toEqual(new Set(['memory']));
    // A's and C's stdio memory servers: one child each for all their queries, ended with the store.
    expect(demoProcesses).toEqual({ started: 2, ended: 2 });
  });
});

describe('examples/app.ts', () => {
  it('configures, queries and shows the caller its own redacted context', async () => {
    const { secret, server } = start();
    const user = randomUUID();
    const auth = { authorization: `Bearer ${mintToken(secret, user)}` };
    const apiKey = `az-${randomUUID()}`;
    const configured = await request(server).post('/configure').set(auth)
      .send({ provider: 'Azure', model: 'gpt-4o-prod', azureDeploymentDetails: { apiVersion: '2024-10-21', apiKey } });
    expect(configured.status).toBe(200);
    expect(configured.body.user).toBe(user);
    expect(JSON.stringify(configured.body)).not.toContain(apiKey);

    const answered = await request(server).post('/query').set(auth).send({ prompt: 'top five customers' });
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ user, provider: 'Azure', model: 'gpt-4o-prod' });
    // Answered by the wire server, on the Azure deployment, with this user's key.
    expect(answered.body.answer).toMatch(new RegExp(`^\\[azure/gpt-4o-prod key:${keyFingerprint(apiKey)}\\] answered 3 words`));
    expect(answered.text).not.toContain(apiKey);

    const me = await request(server).get('/me/context').set(auth);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ userUuid: user, provider: 'Azure', model: 'gpt-4o-prod', llmInstance: '[live]' });
    expect(me.body.azureDeploymentDetails.apiKey).toBe('[redacted]');
    expect(me.text).not.toContain(apiKey);
  });

  it('answers bad input with a JSON error that says how to fix it', async () => {
    const { secret, server, store } = start();
    const user = randomUUID();
    const auth = { authorization: `Bearer ${mintToken(secret, user)}` };
    const cases: Array<[() => request.Test, number, string]> = [
      [() => request(server).post('/query').set(auth).send({ prompt: 'hi' }), 409, 'not_configured'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Nope', model: 'x' }), 400, 'invalid_configuration'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Google', colour: 'red' }), 400, 'invalid_configuration'],
      [() => request(server).post('/configure').set(auth).send({ model: 42 }), 400, 'invalid_configuration'],
      [() => request(server).post('/configure').set(auth).send({}), 400, 'invalid_configuration'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Google', model: 'gemini-2.5-flash' }), 400, 'missing_credentials'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Google', model: 'gpt-9', llmCredentials: { apiKey: 'k-123456789' } }), 400, 'model_not_allowed'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', llmCredentials: { apiKey: 'k-123456789' } }), 400, 'invalid_provider_settings'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Azure', model: 'gpt-4o-prod', azureDeploymentDetails: { endpoint: 'http://169.254.169.254/' }, llmCredentials: { apiKey: 'k-123456789' } }), 400, 'base_url_not_allowed'],
      [() => request(server).post('/configure').set(auth).send({ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { key: 'k' } }), 400, 'invalid_configuration'],
      [() => request(server).post('/configure').set(auth).set('content-type', 'application/json').send('{"provider":'), 400, 'invalid_json'],
      [() => request(server).post('/configure').set(auth).set('content-type', 'text/plain').send('provider=Google'), 415, 'unsupported_media_type'],
      [() => request(server).post('/configure').set(auth).send({ model: 'x'.repeat(70_000) }), 413, 'payload_too_large'],
      [() => request(server).post('/query').set(auth).send({ prompt: '' }), 400, 'invalid_prompt'],
      [() => request(server).get('/nowhere').set(auth), 404, 'not_found'],
      [() => request(server).post('/query').send({ prompt: 'hi' }), 401, 'missing_token'],
    ];
    for (const [send, status, error] of cases) {
      const res = await send();
      expect({ status: res.status, error: res.body.error }).toEqual({ status, error });
      expect(typeof res.body.message).toBe('string');
      expect(res.text).not.toContain('    at ');
    }
    // Rejected configures changed nothing.
    expect(store.peek(user)?.provider ?? null).toBeNull();
  });

  it('routes: a known path under another method is a JSON 405 with Allow, OPTIONS lists the methods, HEAD answers like GET, parameters arrive decoded', async () => {
    const { secret, server } = start();
    const auth = { authorization: `Bearer ${mintToken(secret, randomUUID())}` };
    const put = await request(server).put('/me/context').set(auth).send({});
    expect({ status: put.status, allow: put.headers['allow'], error: put.body.error }).toEqual({ status: 405, allow: 'GET, HEAD', error: 'method_not_allowed' });
    expect(put.body.message).toBe('/me/context answers GET, HEAD, not PUT.');
    const get = await request(server).get('/configure').set(auth);
    expect({ status: get.status, allow: get.headers['allow'], error: get.body.error }).toEqual({ status: 405, allow: 'POST', error: 'method_not_allowed' });
    const options = await request(server).options('/sessions/abc').set(auth);
    expect({ status: options.status, allow: options.headers['allow'] }).toEqual({ status: 204, allow: 'GET, HEAD' });
    const head = await request(server).head('/me/context').set(auth);
    expect({ status: head.status, type: head.headers['content-type'], body: head.text }).toEqual({ status: 200, type: 'application/json; charset=utf-8', body: undefined });
    // A trailing slash routes as without; an unknown path (under any method) is the JSON 404.
    expect((await request(server).get('/me/context/').set(auth)).status).toBe(200);
    for (const res of [await request(server).put('/nowhere').set(auth), await request(server).get('/me/contexts').set(auth)]) {
      expect({ status: res.status, error: res.body.error, allow: res.headers['allow'] }).toEqual({ status: 404, error: 'not_found', allow: undefined });
    }
    // The session id in the path is decoded before the handler sees it.
    const created = await request(server).post('/sessions').set(auth);
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const encoded = `%${id.charCodeAt(0).toString(16).toUpperCase()}${id.slice(1)}`;
    const fetched = await request(server).get(`/sessions/${encoded}`).set(auth);
    expect({ status: fetched.status, id: fetched.body.id }).toEqual({ status: 200, id });
    const malformed = await request(server).get('/sessions/%E0%A4%A').set(auth);
    expect({ status: malformed.status, error: malformed.body.error }).toEqual({ status: 404, error: 'not_found' });
  });
});

describe('examples/server.ts', () => {
  it('prints two ready-made tokens and a listening line, and serves them', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], {
      env: { ...process.env, PORT: '0', JWT_SECRET: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line; got: ${out}`)), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) { clearTimeout(timer); resolve(m[1]!); }
        });
        child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
      });
      const tokens = [...out.matchAll(/\((\S+)\): (\S+)/g)].map((m) => ({ user: m[1]!, token: m[2]! }));
      expect(tokens).toHaveLength(2);
      for (const [i, { user, token }] of tokens.entries()) {
        const [provider, model] = i === 0 ? ['Google', 'gemini-2.5-flash'] : ['Anthropic', 'claude-3-5-haiku'];
        const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
        const apiKey = `key-${randomUUID()}`;
        const res = await fetch(`${url}/configure`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ provider, model, llmCredentials: { apiKey } }),
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { user: string }).user).toBe(user);
        // A real SDK client, on the server's local wire server, with this user's key.
        const query = await fetch(`${url}/query`, { method: 'POST', headers, body: JSON.stringify({ prompt: 'hello' }) });
        expect(query.status).toBe(200);
        expect(((await query.json()) as { answer: string }).answer).toContain(`key:${keyFingerprint(apiKey)}`);
      }
    } finally {
      child.kill('SIGTERM');
    }
  });
});
