/**
 * The same install (no optional peers) imported as ESM: the root loads, each
 * subpath rejects naming its missing peer. Prints one JSON line.
 */
import * as kuc from 'koa-user-context';

const OPTIONAL = { redis: 'ioredis', jwks: 'jwks-rsa', metrics: 'prom-client', mcp: '@modelcontextprotocol/sdk', ai: 'ai', usage: 'rate-limiter-flexible' };
const subpathErrors = {};
for (const [subpath, lib] of Object.entries(OPTIONAL)) {
  subpathErrors[subpath] = await import(`koa-user-context/${subpath}`).then(
    () => null,
    (err) => ({ code: err.code, namesLib: err.message.includes(`'${lib}`) }),
  );
}
console.log(JSON.stringify({ rootExports: Object.keys(kuc).length, userContext: typeof kuc.userContext, subpathErrors }));
