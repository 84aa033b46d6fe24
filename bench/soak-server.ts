/**
 * The soak target: the example app (examples/app.ts createApp) in its own
 * process, started by bench/soak.ts with `--expose-gc`. It reports its port
 * over IPC and answers `{ type: 'sample' }` with a memory sample taken right
 * after a full GC, so the figures show retained memory, not garbage.
 *
 *   JWT_SECRET  HS256 secret shared with the driver (required)
 */
import type { AddressInfo } from 'node:net';
import { createApp, createStore } from '../examples/app.js';
import { fakeLlmResources } from '../test/support/fake-llm.js';

const secret = process.env['JWT_SECRET'];
if (secret === undefined || process.send === undefined) {
  console.error('soak-server: run me from bench/soak.ts (needs JWT_SECRET and an IPC channel)');
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('soak-server: start node with --expose-gc');
  process.exit(2);
}

// The in-process fake LLM: the soak measures the library's memory and
// lifetimes at a request rate the real SDK path (about twice the CPU per
// query, with its wire server in this process) does not reach on a shared
// 2-core machine within the short soak's floor.
const { app, store } = createApp({ secret, store: createStore({ resources: fakeLlmResources() }) });
let failures = 0;
app.on('error', (err: unknown) => {
  failures++;
  if (failures <= 5) console.error('soak-server request failed:', err);
});
const server = app.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'ready', port: (server.address() as AddressInfo).port });
});

process.on('message', (msg: { type?: string }) => {
  if (msg?.type === 'sample') {
    gc();
    gc();
    const m = process.memoryUsage();
    process.send!({
      type: 'sample',
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      users: store.size,
      scopes: store.scopesInFlight,
      failures,
    });
  } else if (msg?.type === 'stop') {
    server.close();
    store.close({ timeout: 5000 }).then(() => process.exit(0), () => process.exit(1));
  }
});
process.on('disconnect', () => process.exit(0));
