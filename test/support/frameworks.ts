/**
 * What the framework tests run against: the wire server and the MCP
 * project's server-everything over Streamable HTTP (a session per user),
 * started once per file; a store per test with the example's LLM client
 * spec, closed after the test, and the wire calls forgotten.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { demoStore } from '../../examples/frameworks/demo.js';
import { startWireServer, type WireServer } from '../../examples/providers/wire-server.js';
import type { ContextStore, ResourceSpec } from '../../src/index.js';
import { freePort } from '../helpers/redis.js';
import { startEverythingHttp, type EverythingHttp } from './mcp-reference.js';

export interface FrameworkServers {
  readonly wire: WireServer;
  /** A store whose users get `llm(wireUrl)` clients and server-everything as `everything`. */
  newStore(llm: (wireUrl: string) => ResourceSpec): ContextStore;
}

/** Registers the hooks; call at the top of a test file. `afterEachTest` runs after each test's store is closed. */
export function frameworkServers(afterEachTest: () => void = () => {}): FrameworkServers {
  let wire: WireServer | undefined;
  let everything: EverythingHttp | undefined;
  const stores: ContextStore[] = [];
  beforeAll(async () => {
    [wire, everything] = await Promise.all([startWireServer(), freePort().then(startEverythingHttp)]);
  }, 30_000);
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    wire?.reset();
    afterEachTest();
  });
  afterAll(async () => {
    await Promise.all([wire?.close(), everything?.stop()]);
  });
  return {
    get wire() {
      if (wire === undefined) throw new Error('frameworkServers(): the servers start in beforeAll');
      return wire;
    },
    newStore(llm) {
      const store = demoStore(llm(this.wire.url), { url: everything!.url });
      stores.push(store);
      return store;
    },
  };
}
