/**
 * A consumer of `koa-user-context/ai`, compiled (module nodenext) and run by
 * the package test against each peer major it installs (AI SDK 6 with
 * `@ai-sdk/openai` 3, AI SDK 7 with `@ai-sdk/openai` 4): users with their own
 * keys ask at the same time through the real `@ai-sdk/openai` client, against
 * the local wire server at `WIRE_URL` (examples/providers/wire-server.ts,
 * started by the test), once with generateText and once with streamText. It
 * prints one JSON line: the installed `ai` version and, per user, the key
 * fingerprint and model each answer came back with.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { createOpenAI } from '@ai-sdk/openai';
import { ContextStore, configureUser, getUserLlmInstance, runAsUser } from 'koa-user-context';
import { createLlmRegistry, getUserLlm, openai, type RegistryLlmInstance } from 'koa-user-context/ai';

// The client type registered by declaration merging: the registry's resource must fit it (a type check, run by tsc here).
declare module 'koa-user-context' {
  interface UserContextTypes {
    llm: RegistryLlmInstance;
  }
}

const wire = process.env['WIRE_URL'];
if (wire === undefined) throw new Error('set WIRE_URL to the wire server');
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

const llms = createLlmRegistry({
  providers: { OpenAI: { provider: openai(createOpenAI), models: ['gpt-4o-mini', 'gpt-4.1'], baseURL: `${wire}/openai/v1` } },
});
const store = new ContextStore({ resources: { llmInstance: llms.resource() } });
const fingerprint = (key: string): string => createHash('sha256').update(key).digest('hex').slice(0, 12);

const users = Array.from({ length: 4 }, (_, i) => ({ uuid: randomUUID(), apiKey: `sk-consumer-${i}-${randomUUID()}`, model: i % 2 === 0 ? 'gpt-4o-mini' : 'gpt-4.1' }));
const answers = await Promise.all(
  users.map((user) =>
    runAsUser(user.uuid, async () => {
      await configureUser({ provider: 'OpenAI', model: user.model, llmCredentials: { apiKey: user.apiKey } });
      const llm = await getUserLlm();
      if (llm == null) throw new Error('no LLM client');
      // The registered type flows to the core getter: the same client, typed, with no cast.
      if ((await getUserLlmInstance()) !== llm) throw new Error('getUserLlmInstance() is not the client getUserLlm() answered');
      const { text } = await llm.generateText({ prompt: `hello from ${user.uuid}` });
      let streamed = '';
      for await (const part of llm.streamText({ prompt: `stream for ${user.uuid}` }).textStream) streamed += part;
      return { expected: { key: fingerprint(user.apiKey), model: user.model }, text, streamed };
    }, { store }),
  ),
);
await store.close();
const require = createRequire(import.meta.url);
console.log(JSON.stringify({ ai: (require('ai/package.json') as { version: string }).version, answers }));
