/**
 * Two copies of the package in one process (the ESM build, imported, and the
 * CommonJS build, required): a scope opened with one copy is read by the
 * other's helpers, because both keep their AsyncLocalStorage and default store
 * on globalThis under Symbol.for keys. Prints one JSON line.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import * as esm from 'koa-user-context';

const require = createRequire(import.meta.url);
const cjs = require('koa-user-context') as typeof esm;

const a = randomUUID();
const b = randomUUID();
const store = new esm.ContextStore();
const esmScopeReadByCjs = await esm.runAsUser(
  a,
  async () => {
    await esm.configureUser({ model: 'set-with-esm' });
    await new Promise((resolve) => setTimeout(resolve, 1));
    return { uuid: cjs.currentUserUuid(), model: cjs.getUserModel() };
  },
  { store },
);
const cjsScopeReadByEsm = await cjs.runAsUser(
  b,
  async () => {
    await cjs.configureUser({ model: 'set-with-cjs' });
    await new Promise((resolve) => setTimeout(resolve, 1));
    return { uuid: esm.currentUserUuid(), model: esm.getUserModel() };
  },
  { store },
);
await store.close();
console.log(
  JSON.stringify({
    cjsResolved: require.resolve('koa-user-context'),
    distinctCopies: (cjs.ContextStore as unknown) !== esm.ContextStore,
    a,
    b,
    esmScopeReadByCjs,
    cjsScopeReadByEsm,
  }),
);
