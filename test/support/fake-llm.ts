/**
 * An in-process fake LLM client, for unit tests that exercise the store and
 * the example app without a wire (the example app and the demo run real AI
 * SDK clients against examples/providers/wire-server.ts). It is built for one
 * provider/model and says so in every answer. It has the example agent's
 * `AgentLlm` shape, so the example app accepts it from a test's store.
 */
import type { UserConfig } from '../../src/index.js';
import { delay } from '../../examples/agent/llm.js';

export class FakeLlmClient {
  readonly provider: string;
  readonly model: string;
  closed = false;
  calls = 0;
  /** Calls stopped by their abort signal (the HTTP client went away). */
  aborted = 0;

  constructor(provider: string, model: string) {
    this.provider = provider;
    this.model = model;
  }

  async complete(prompt: string, signal?: AbortSignal): Promise<string> {
    if (this.closed) throw new Error(`FakeLlmClient ${this.provider}/${this.model} used after close()`);
    this.calls++;
    try {
      await delay(2 + Math.random() * 8, signal);
    } catch (error) {
      this.aborted++;
      throw error;
    }
    return `[${this.provider}/${this.model}] ${summarise(prompt)}`;
  }

  /**
   * Streams the answer word by word (one token every few ms), like a
   * provider's streaming API. Stops when `signal` aborts.
   */
  async *stream(prompt: string, signal?: AbortSignal): AsyncGenerator<string, void, undefined> {
    if (this.closed) throw new Error(`FakeLlmClient ${this.provider}/${this.model} used after close()`);
    this.calls++;
    const words = [`[${this.provider}/${this.model}]`, ...prompt.trim().split(/\s+/).filter(Boolean)];
    for (const word of words) {
      try {
        await delay(1 + Math.random() * 4, signal);
      } catch (error) {
        this.aborted++;
        throw error;
      }
      if (this.closed) throw new Error(`FakeLlmClient ${this.provider}/${this.model} closed while streaming`);
      yield word;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The store's `resources.llmInstance.create`: one client per configuration. */
export function createFakeLlm(config: UserConfig): FakeLlmClient | null {
  if (config.provider === null || config.model === null) return null;
  return new FakeLlmClient(config.provider, config.model);
}

function summarise(prompt: string): string {
  const words = prompt.trim().split(/\s+/).filter(Boolean);
  return `answered ${words.length} word${words.length === 1 ? '' : 's'}: "${words.slice(0, 8).join(' ')}"`;
}

/** The store's `resources` with the fake LLM client, for tests that run the example app without a wire server. */
export function fakeLlmResources(): { llmInstance: { create: typeof createFakeLlm } } {
  return { llmInstance: { create: createFakeLlm } };
}
