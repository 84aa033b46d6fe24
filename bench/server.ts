/**
 * A contender's server, run as a child process of bench/run.ts:
 * `node --import tsx bench/server.ts <contender-id>`. It builds the app,
 * listens on an ephemeral 127.0.0.1 port, tells the parent the port over IPC
 * and exits when the parent disconnects.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { cleanups } from './contenders.js';
import { contenderById } from './registry.js';
import { retainTickObject } from '../examples/tick-object.js';
import { printNextTickFeedback } from './next-tick-feedback.js';
import { PROCESS_LISTENERS_ENV, readServerFixtures, RETAIN_TICK_ENV } from './fixtures.js';

export type ServerMessage =
  | { type: 'ready'; port: number }
  | { type: 'error'; message: string }
  /** Reply to a `cpu` request: this process's CPU time so far, in µs (user + system). */
  | { type: 'cpu'; micros: number; userMicros: number };

async function main(): Promise<void> {
  const id = process.argv[2];
  const contender = contenderById(String(id));
  // Every row, the bare route too, runs with process.nextTick's tick maps kept, as examples/server.ts
  // runs: no server is compared in the state that loses them (examples/tick-object.ts).
  if (process.env[RETAIN_TICK_ENV] !== '0') retainTickObject();
  // bench/next-tick-state.ts: no-op listeners on `process` under these event names, added before the app is built.
  for (const name of (process.env[PROCESS_LISTENERS_ENV] ?? '').split(',').filter(Boolean)) process.on(name, () => {});
  const app = await contender.build(readServerFixtures());
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  server.keepAliveTimeout = 60_000;
  const { port } = server.address() as AddressInfo;
  process.on('message', (message: { type?: string }) => {
    // Needs --allow-natives-syntax (bench/next-tick-state.ts).
    if (message.type === 'print-next-tick-feedback') return printNextTickFeedback();
    if (message.type !== 'cpu') return;
    const { user, system } = process.cpuUsage();
    process.send!({ type: 'cpu', micros: user + system, userMicros: user } satisfies ServerMessage);
  });
  process.send!({ type: 'ready', port } satisfies ServerMessage);
  process.on('disconnect', () => {
    server.close();
    server.closeAllConnections();
    const timeout = new Promise<void>((done) => setTimeout(done, 5_000).unref());
    const cleaned = Promise.allSettled(cleanups.map((cleanup) => cleanup()));
    // Exit normally (so --cpu-prof writes its profile) once cleaned up, or after 5 s.
    void Promise.race([cleaned, timeout]).then(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.send?.({ type: 'error', message } satisfies ServerMessage);
  process.exitCode = 1;
  process.disconnect?.();
});
