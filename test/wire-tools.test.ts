/**
 * The wire server speaks tool calls in each provider's own format: the real
 * AI SDK providers (OpenAI chat completions and Responses, Anthropic, Google,
 * Bedrock) run multi-step tool loops through generateText / streamText with
 * `stopWhen: stepCountIs(n)` against it, streamed and not; the raw `openai`
 * client reads its Responses answers too. The server records the key, the
 * model, the tools offered and the tool results it received.
 */
import { createAmazonBedrock } from '@ai-sdk/amazon-bedrock';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool, type LanguageModel, type ToolSet } from 'ai';
import OpenAI from 'openai';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { directivesOf, keyFingerprint, resolveTool, startWireServer, type WireServer } from '../examples/providers/wire-server.js';

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

let wire: WireServer;
beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 1 });
});
afterAll(async () => {
  await wire.close();
});
beforeEach(() => wire.reset());

const PROVIDERS: Array<{ name: string; format: string; model: (key: string) => LanguageModel }> = [
  { name: 'OpenAI chat completions', format: 'openai', model: (apiKey) => createOpenAI({ apiKey, baseURL: `${wire.url}/openai/v1` }).chat('gpt-4o-mini') },
  { name: 'OpenAI Responses', format: 'responses', model: (apiKey) => createOpenAI({ apiKey, baseURL: `${wire.url}/openai/v1` }).responses('gpt-4.1') },
  { name: 'Anthropic messages', format: 'anthropic', model: (apiKey) => createAnthropic({ apiKey, baseURL: `${wire.url}/anthropic/v1` })('claude-3-5-haiku') },
  { name: 'Google generateContent', format: 'google', model: (apiKey) => createGoogleGenerativeAI({ apiKey, baseURL: `${wire.url}/google/v1beta` })('gemini-2.5-flash') },
  {
    name: 'Bedrock Converse', format: 'bedrock',
    model: (apiKey) => createAmazonBedrock({ apiKey, region: 'eu-west-1', baseURL: `${wire.url}/bedrock` })('amazon.nova-lite-v1:0'),
  },
];

/** Two tools whose results carry a token unique to the test, so the final text can be traced back to them. */
function toolsFor(token: string, ran: string[]): ToolSet {
  return {
    lookup: tool({
      description: 'Looks a word up.',
      inputSchema: jsonSchema<{ word: string }>({ type: 'object', properties: { word: { type: 'string' } }, required: ['word'] }),
      execute: async ({ word }) => {
        ran.push(`lookup:${word}`);
        return `definition-of-${word}-${token}`;
      },
    }),
    count: tool({
      description: 'Counts to n.',
      inputSchema: jsonSchema<{ n: number }>({ type: 'object', properties: { n: { type: 'number' } }, required: ['n'] }),
      execute: async ({ n }) => {
        ran.push(`count:${n}`);
        return { counted: n, token };
      },
    }),
  };
}

describe.each(PROVIDERS)('$name', ({ format, model }) => {
  it.each([false, true])('streamed=%s: a 2-step loop calls the asked tool, then answers a text quoting its result', async (streamed) => {
    const key = `sk-${randomUUID()}`;
    const token = randomUUID().slice(0, 8);
    const ran: string[] = [];
    const args = { model: model(key), tools: toolsFor(token, ran), stopWhen: stepCountIs(2), prompt: `please call lookup {"word":"koala"} now` };
    let text: string;
    let steps: number;
    if (streamed) {
      const result = streamText(args);
      text = await result.text;
      steps = (await result.steps).length;
    } else {
      const result = await generateText(args);
      text = result.text;
      steps = result.steps.length;
    }
    expect(ran).toEqual(['lookup:koala']);
    expect(steps).toBe(2);
    expect(text).toContain(`lookup → definition-of-koala-${token}`);
    expect(text).toContain(`key:${keyFingerprint(key)}`);
    const calls = wire.calls;
    expect(calls.map((c) => [c.format, c.stream, c.keyHash])).toEqual([
      [format, streamed, keyFingerprint(key)],
      [format, streamed, keyFingerprint(key)],
    ]);
    expect(calls[0]!.toolsOffered).toEqual(['lookup', 'count']);
    expect(calls[0]!.toolCall).toMatchObject({ name: 'lookup', args: { word: 'koala' } });
    expect(calls[0]!.toolResults).toEqual([]);
    expect(calls[1]!.toolCall).toBeNull();
    expect(calls[1]!.toolResults).toHaveLength(1);
    expect(calls[1]!.toolResults[0]).toMatchObject({ name: 'lookup', isError: false });
    expect(calls[1]!.toolResults[0]!.text).toContain(`definition-of-koala-${token}`);
    expect(calls.every((c) => c.finished && !c.aborted)).toBe(true);
  });

  it('two directives make a 3-step loop, in order; a thrown tool comes back as an error result', async () => {
    const key = `sk-${randomUUID()}`;
    const token = randomUUID().slice(0, 8);
    const ran: string[] = [];
    const tools: ToolSet = {
      ...toolsFor(token, ran),
      broken: tool({
        description: 'Always fails.',
        inputSchema: jsonSchema<Record<string, unknown>>({ type: 'object', properties: {} }),
        execute: async (): Promise<string> => {
          throw new Error(`broken-${token}`);
        },
      }),
    };
    const result = await generateText({
      model: model(key), tools, stopWhen: stepCountIs(5),
      prompt: `call count {"n": 3} and then call broken`,
    });
    expect(ran).toEqual(['count:3']);
    expect(result.steps).toHaveLength(3);
    expect(result.text).toContain('2 tool results:');
    expect(result.text).toContain(token);
    const last = wire.calls.at(-1)!;
    expect(last.toolResults.map((r) => r.name)).toEqual(['count', 'broken']);
    expect(last.toolResults[1]!.text).toContain(`broken-${token}`);
    // Anthropic's tool_result has is_error; the other formats carry the error as text.
    if (format === 'anthropic') expect(last.toolResults[1]!.isError).toBe(true);
  });

  it('a directive naming a tool that is not offered gets a text saying so, and no tool call', async () => {
    const result = await generateText({ model: model(`sk-${randomUUID()}`), tools: toolsFor('x', []), stopWhen: stepCountIs(3), prompt: 'call delete_everything' });
    expect(result.steps).toHaveLength(1);
    expect(result.text).toContain('no tool named delete_everything was offered (offered: lookup, count)');
    expect(wire.calls[0]!.toolCall).toBeNull();
  });
});

describe('the raw openai client on the Responses API (what the OpenAI Agents SDK uses)', () => {
  it.each([false, true])('stream=%s: a function call, then a text quoting the function_call_output', async (stream) => {
    const client = new OpenAI({ apiKey: `sk-${randomUUID()}`, baseURL: `${wire.url}/openai/v1` });
    const tools = [{ type: 'function' as const, name: 'lookup', parameters: { type: 'object', properties: {} }, strict: false }];
    const input: OpenAI.Responses.ResponseInput = [{ role: 'user', content: 'call lookup {"word":"x"}' }];
    const first = stream
      ? await client.responses.stream({ model: 'gpt-4.1', input, tools }).finalResponse()
      : await client.responses.create({ model: 'gpt-4.1', input, tools });
    const fc = first.output[0];
    expect(fc?.type).toBe('function_call');
    if (fc?.type !== 'function_call') return;
    expect(fc.name).toBe('lookup');
    expect(JSON.parse(fc.arguments)).toEqual({ word: 'x' });
    input.push(fc, { type: 'function_call_output', call_id: fc.call_id, output: 'the-result-42' });
    const second = stream
      ? await client.responses.stream({ model: 'gpt-4.1', input, tools }).finalResponse()
      : await client.responses.create({ model: 'gpt-4.1', input, tools });
    expect(second.output_text).toContain('lookup → the-result-42');
    expect(wire.calls.map((c) => c.format)).toEqual(['responses', 'responses']);
  });
});

describe('the convention', () => {
  it('reads directives with nested JSON arguments, in order, and finds prefixed tools by their short name', () => {
    expect(directivesOf('first call a {"x":{"y":"}"}} then call b, finally call c {oops}')).toEqual([
      { name: 'a', args: { x: { y: '}' } } },
      { name: 'b', args: {} },
      { name: 'c', args: {} },
    ]);
    expect(resolveTool('echo', ['memory__read_graph', 'everything__echo'])).toBe('everything__echo');
    expect(resolveTool('echo', ['echo', 'everything__echo'])).toBe('echo');
    expect(resolveTool('nope', ['echo'])).toBeUndefined();
  });
});
