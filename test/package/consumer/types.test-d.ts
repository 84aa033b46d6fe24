/**
 * Type tests against the BUILT declarations of the installed tarball (the
 * package test compiles this file with tsc in the ESM nodenext, bundler and
 * CommonJS consumers). Apps register their client types and fields by
 * declaration merging; every getter, setter and factory is checked against
 * them. Each `@ts-expect-error` line must fail to compile, or tsc reports
 * the directive as unused.
 */
import type { Client as McpSdkClient } from '@modelcontextprotocol/sdk/client/index.js';
import {
  ContextStore,
  configureUser,
  getUserField,
  getUserLlmInstance,
  getUserMcpClient,
  getUserRuntimeContext,
  setUserField,
  setUserLlmInstance,
  setUserMcpClient,
  type LlmInstance,
  type McpClient,
  type UserConfig,
} from 'koa-user-context';
import { createMcpClientFactory } from 'koa-user-context/mcp';
import { RedisContextStore } from 'koa-user-context/redis';

interface FakeLlm {
  readonly brand: 'fake-llm';
  complete(prompt: string): Promise<string>;
}

declare module 'koa-user-context' {
  interface UserContextFields {
    tenant: string | null;
    quota: number;
  }
  interface UserContextTypes {
    llm: FakeLlm;
    mcp: McpSdkClient;
  }
}

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

const fake: FakeLlm = { brand: 'fake-llm', complete: async (prompt) => prompt };
declare const sdkClient: McpSdkClient;

// The getters return the registered types.
expectType<Equal<LlmInstance, FakeLlm>>();
expectType<Equal<McpClient, McpSdkClient>>();
expectType<Equal<ReturnType<typeof getUserLlmInstance>, FakeLlm | null>>();
expectType<Equal<ReturnType<typeof getUserMcpClient>, McpSdkClient | null>>();
export function reads(): void {
  const llm: FakeLlm | null = getUserLlmInstance();
  const mcp: McpSdkClient | null = getUserMcpClient('0f8fad5b-d9cb-469f-a165-70867728950e');
  // @ts-expect-error the registered LLM client is not a number
  const wrongLlm: number | null = getUserLlmInstance();
  // @ts-expect-error the registered MCP client is not the LLM client
  const wrongMcp: FakeLlm | null = getUserMcpClient();
  const tenant = getUserField('tenant');
  expectType<Equal<typeof tenant, string | null>>();
  expectType<Equal<ReturnType<typeof getUserField<'quota'>>, number>>();
  // @ts-expect-error not a field
  getUserField('tenantt');
  const ctx = getUserRuntimeContext();
  expectType<Equal<typeof ctx.tenant, string | null>>();
  expectType<Equal<typeof ctx.llmInstance, FakeLlm | null>>();
  expectType<Equal<typeof ctx.mcpClient, McpSdkClient | null>>();
  void [llm, mcp, wrongLlm, wrongMcp];
}

// Writes are checked against the registered types.
export async function writes(): Promise<void> {
  await setUserLlmInstance(fake);
  await setUserLlmInstance(null);
  await setUserMcpClient(sdkClient);
  // @ts-expect-error 42 is not the registered LLM client
  await setUserLlmInstance(42);
  // @ts-expect-error the LLM client is not the registered MCP client
  await setUserMcpClient(fake);
  const view = await configureUser({ llmInstance: fake, mcpClient: null, tenant: 'acme', quota: 3 });
  expectType<Equal<typeof view.quota, number>>();
  // @ts-expect-error 42 is not the registered LLM client
  await configureUser({ llmInstance: 42 });
  // @ts-expect-error an app field keeps its declared type
  await configureUser({ tenant: 42 });
  await setUserField('tenant', 'acme');
  // @ts-expect-error an app field keeps its declared type
  await setUserField('quota', 'many');
}

// Resource factories are checked against the registered types.
new ContextStore({
  defaults: { tenant: null, quota: 10 },
  resources: {
    llmInstance: {
      create: (config: UserConfig) => (config.provider === null ? null : fake),
      dispose: (client) => {
        expectType<Equal<typeof client, FakeLlm>>();
      },
    },
    mcpClient: { create: () => sdkClient, dispose: null },
  },
});
// @ts-expect-error a factory returning 42 is not an LLM client
new ContextStore({ resources: { llmInstance: { create: () => 42 } } });
// @ts-expect-error an async factory makes the getter return a Promise, not FakeLlm
new ContextStore({ resources: { llmInstance: { create: async () => fake } } });
// @ts-expect-error createMcpClientFactory builds Promise<UserMcpConnection>, not the registered SDK client
new ContextStore({ resources: { mcpClient: createMcpClientFactory({ resolveServer: () => null }) } });
// @ts-expect-error defaults of app fields are typed too
new ContextStore({ defaults: { tenant: 5 } });
// The Redis store takes the same typed options.
export const redisStore = (): RedisContextStore =>
  // @ts-expect-error a factory returning 42 is not an LLM client
  new RedisContextStore({ redis: 'redis://127.0.0.1:6379', resources: { llmInstance: { create: () => 42 } } });
