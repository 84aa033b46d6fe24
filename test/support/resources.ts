/** Fake live resources that record what they were built from and how often they were closed. */
import type { UserConfig } from '../../src/index.js';

export interface FakeClient {
  readonly id: number;
  readonly kind: 'llm' | 'mcp';
  readonly userUuid: string;
  readonly provider: string | null;
  readonly model: string | null;
  readonly mcpServerName: string | null;
  closed: number;
  close(): void;
}

let nextId = 0;

/** A client object closed through its `close()` method (the store's default dispose). */
export function fakeClient(
  kind: 'llm' | 'mcp' = 'llm',
  from: Partial<Pick<FakeClient, 'userUuid' | 'provider' | 'model' | 'mcpServerName'>> = {},
): FakeClient {
  return {
    id: ++nextId,
    kind,
    userUuid: from.userUuid ?? '',
    provider: from.provider ?? null,
    model: from.model ?? null,
    mcpServerName: from.mcpServerName ?? null,
    closed: 0,
    close() {
      this.closed++;
    },
  };
}

/** A `resources.*.create` factory that records every client it builds. */
export function clientFactory(kind: 'llm' | 'mcp' = 'llm') {
  const built: FakeClient[] = [];
  const create = (config: UserConfig, userUuid: string): FakeClient => {
    const client = fakeClient(kind, {
      userUuid,
      provider: config.provider,
      model: config.model,
      mcpServerName: config.mcpServerName,
    });
    built.push(client);
    return client;
  };
  return { create, built };
}
