/**
 * Type tests of an app that registers no client types (compiled on its own:
 * declaration merging is program-wide). The getters return `unknown`, so any
 * factory or client is accepted, and createMcpClientFactory() fits.
 */
import { ContextStore, getUserLlmInstance, getUserMcpClient, setUserLlmInstance } from 'koa-user-context';
import { createMcpClientFactory } from 'koa-user-context/mcp';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

expectType<Equal<ReturnType<typeof getUserLlmInstance>, unknown>>();
expectType<Equal<ReturnType<typeof getUserMcpClient>, unknown>>();
new ContextStore({
  resources: {
    llmInstance: { create: () => 42 },
    mcpClient: createMcpClientFactory({ resolveServer: (config) => config.mcpServerName }),
  },
});
export const write = (): Promise<void> => setUserLlmInstance({ anything: true });
// @ts-expect-error still not a field
getUserLlmInstance(42);
