'use strict';
// Requires only the root entry where every optional peer IS installed, and
// lists which of them got loaded (expected: none).
require('koa-user-context');
const optional = ['ioredis', 'jwks-rsa', 'prom-client', '@modelcontextprotocol/sdk', 'ai', '@ai-sdk/', 'rate-limiter-flexible'];
const loaded = Object.keys(require.cache).filter((file) => optional.some((name) => file.includes(`/node_modules/${name}/`)));
const dependencies = ['lru-cache', 'jsonwebtoken', 'ms', 'koa-unless'].filter((name) =>
  Object.keys(require.cache).some((file) => file.includes(`/node_modules/${name}/`)),
);
console.log(JSON.stringify({ loaded, dependencies }));
