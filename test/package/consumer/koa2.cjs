'use strict';
/**
 * A plain CommonJS Koa 2 app installed WITHOUT the optional peers (ioredis,
 * jwks-rsa, prom-client, @modelcontextprotocol/sdk): the root entry loads
 * none of them, each subpath names the one it needs. Prints one JSON line.
 */
const { createHmac, randomBytes, randomUUID } = require('node:crypto');
const { once } = require('node:events');
const Koa = require('koa');
const kuc = require('koa-user-context');

const OPTIONAL = { redis: 'ioredis', jwks: 'jwks-rsa', metrics: 'prom-client', mcp: '@modelcontextprotocol/sdk', ai: 'ai', usage: 'rate-limiter-flexible' };
const loadedOptional = Object.keys(require.cache).filter((file) =>
  Object.values(OPTIONAL).some((name) => file.includes(`/node_modules/${name}/`)),
);
const subpathErrors = {};
for (const [subpath, lib] of Object.entries(OPTIONAL)) {
  try {
    require(`koa-user-context/${subpath}`);
    subpathErrors[subpath] = null;
  } catch (err) {
    subpathErrors[subpath] = { code: err.code, namesLib: err.message.includes(`'${lib}`) };
  }
}

const SECRET = randomBytes(48).toString('base64url');
function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + 600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

async function main() {
  const store = new kuc.ContextStore();
  const app = new Koa();
  app.use(kuc.userContext({ store, secret: SECRET, algorithms: ['HS256'] }));
  app.use(async (ctx) => {
    if (ctx.method === 'POST') await kuc.configureUser({ model: ctx.query.model });
    ctx.body = { user: kuc.currentUserUuid(), model: kuc.getUserModel() };
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  const uuid = randomUUID();
  const auth = { authorization: `Bearer ${token(uuid)}` };
  try {
    await fetch(`${base}/?model=m-koa2`, { method: 'POST', headers: auth });
    const read = await fetch(base, { headers: auth }).then((res) => res.json());
    const anonymous = await fetch(base).then(async (res) => ({ status: res.status, body: await res.json() }));
    console.log(JSON.stringify({ uuid, read, anonymous, loadedOptional, subpathErrors, koa: require('koa/package.json').version }));
  } finally {
    server.close();
    await store.close();
  }
}
main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
