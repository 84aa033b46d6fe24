import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../examples/app.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import { demoProcesses, runDemo } from '../examples/two-users.js';
import type { ContextStore } from '../src/index.js';

const open: Array<{ server: Server; store: ContextStore }> = [];
afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    server.close();
    await store.close();
  }
});

function start() {
  const secret = generateSecret();
  const { app, store } = createApp({ secret });
  const server = app.listen(0, '127.0.0.1');
  open.push({ server, store });
  return { secret, server, store };
}

describe('examples/two-users.ts', () => {
  it('runs every user on their own provider/model and MCP server (one over stdio) with zero cross-talk', async () => {
    const rows = await runDemo(12);
    expect(rows).toHaveLength(36);
    expect(rows.filter((r) => !r.ok)).toEqual([]);
    expect(new Set(rows.filter((r) => r.user === 'A').map((r) => r.ran))).toEqual(new Set(['Google/gemini-2.5-flash']));
    expect(new Set(rows.filter((r) => r.user === 'B').map((r) => r.ran))).toEqual(new Set(['Anthropic/claude-3-5-haiku']));
    expect(new Set(rows.filter((r) => r.user === 'C').map((r) => r.mcpServer))).toEqual(new Set(['memory']));
    // User C's stdio server: one child for all twelve queries, ended with the store.
    expect(demoProcesses).toEqual({ started: 1, ended: 1 });
  });
});

describe('examples/app.ts', () => {
  it('configures, queries and shows the caller its own redacted context', async () => {
    const { secret, server } = start();
    const user = randomUUID();
    const auth = { authorization: `Bearer ${mintToken(secret, user)}` };
    const configured = await request(server).post('/configure').set(auth)
      .send({ provider: 'Azure', model: 'gpt-4o', azureDeploymentDetails: { endpoint: 'https://x', apiKey: 'sk-secret-123' } });
    expect(configured.status).toBe(200);
    expect(configured.body.user).toBe(user);
    expect(JSON.stringify(configured.body)).not.toContain('sk-secret-123');

    const answered = await request(server).post('/query').set(auth).send({ prompt: 'top five customers' });
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ user, provider: 'Azure', model: 'gpt-4o' });
    expect(answered.body.answer).toMatch(/^\[Azure\/gpt-4o\]/);

    const me = await request(server).get('/me/context').set(auth);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ userUuid: user, provider: 'Azure', model: 'gpt-4o', llmInstance: '[live]' });
    expect(me.body.azureDeploymentDetails.apiKey).toBe('[redacted]');
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
        const provider = i === 0 ? 'Google' : 'Anthropic';
        const res = await fetch(`${url}/configure`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ provider, model: `m-${i}` }),
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { user: string }).user).toBe(user);
      }
    } finally {
      child.kill('SIGTERM');
    }
  });
});
