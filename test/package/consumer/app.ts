/**
 * A consumer app, compiled by the package test once as ESM (module nodenext,
 * "type": "module") and once as CommonJS (module nodenext, "type":
 * "commonjs", so every import below becomes a require()). It imports the root
 * and every subpath of the installed tarball and runs two users through the
 * middleware at once; it prints one JSON line the test checks.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { ContextStore, configureUser, getUserModel, getUserProvider, userContext } from 'koa-user-context';
import { jwksKeyResolver } from 'koa-user-context/jwks';
import { createMcpClientFactory } from 'koa-user-context/mcp';
import { registerContextMetrics } from 'koa-user-context/metrics';
import { RedisContextStore } from 'koa-user-context/redis';

const SECRET = randomBytes(48).toString('base64url');

function token(sub: string): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + 600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

async function main(): Promise<void> {
  const subpaths = { RedisContextStore, jwksKeyResolver, registerContextMetrics, createMcpClientFactory };
  for (const [name, value] of Object.entries(subpaths)) {
    if (typeof value !== 'function') throw new Error(`${name} is ${typeof value}, expected a function`);
  }

  const store = new ContextStore();
  const app = new Koa();
  app.use(userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
  app.use(async (ctx) => {
    if (ctx.method === 'POST') {
      await configureUser({ provider: String(ctx.query['provider']), model: String(ctx.query['model']) });
    }
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
    ctx.body = { provider: getUserProvider(), model: getUserModel() };
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const users = [
    { uuid: randomUUID(), provider: 'Google', model: 'gemini-2.5-flash' },
    { uuid: randomUUID(), provider: 'Anthropic', model: 'claude-3-5-haiku' },
  ];
  const call = async (uuid: string, query = ''): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${base}/${query}`, {
      method: query === '' ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token(uuid)}` },
    });
    return { status: res.status, body: await res.json() };
  };
  try {
    const configured = await Promise.all(users.map((u) => call(u.uuid, `?provider=${u.provider}&model=${u.model}`)));
    const reads = await Promise.all(users.flatMap((u) => Array.from({ length: 10 }, () => call(u.uuid))));
    const anonymous = await fetch(base).then(async (res) => ({ status: res.status, body: await res.json() }));
    console.log(JSON.stringify({ users, configured, reads, anonymous }));
  } finally {
    server.close();
    await store.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
