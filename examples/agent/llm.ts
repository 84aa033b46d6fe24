/**
 * What the example agent needs from an LLM client, and the adapter from the
 * user's `UserLlm` (built by the koa-user-context/ai registry on the real AI
 * SDK) to it. Calls pass the request's abort signal, so a client that
 * disconnects stops the provider's stream.
 */
import { UserLlm } from '../../src/ai.js';

export interface AgentLlm {
  readonly provider: string;
  readonly model: string;
  complete(prompt: string, signal?: AbortSignal): Promise<string>;
  stream(prompt: string, signal?: AbortSignal): AsyncIterable<string>;
}

/**
 * The agent's view of `getUserLlmInstance()`: a `UserLlm` is adapted; a value
 * already shaped like an `AgentLlm` (a unit test's in-process fake) is used
 * as it is; anything else is `null`.
 */
export function agentLlm(value: unknown): AgentLlm | null {
  if (UserLlm.is(value)) {
    return {
      provider: value.provider,
      model: value.model,
      complete: async (prompt, signal) => (await value.generateText({ prompt, ...(signal ? { abortSignal: signal } : {}) })).text,
      stream: (prompt, signal) => streamWords(value, prompt, signal),
    };
  }
  const v = value as Partial<AgentLlm> | null;
  return v !== null && typeof v === 'object' && typeof v.provider === 'string' && typeof v.model === 'string'
    && typeof v.complete === 'function' && typeof v.stream === 'function' ? (v as AgentLlm) : null;
}

/**
 * The provider's text deltas. A provider error ends the stream with that
 * error (the AI SDK would only log it and end quietly); an abort throws the
 * signal's reason.
 */
async function* streamWords(llm: UserLlm, prompt: string, signal: AbortSignal | undefined): AsyncGenerator<string> {
  const result = llm.streamText({ prompt, ...(signal ? { abortSignal: signal } : {}), onError: () => {} });
  for await (const part of result.fullStream) {
    if (part.type === 'text-delta' && part.text !== '') yield part.text;
    else if (part.type === 'error') throw part.error;
  }
  signal?.throwIfAborted();
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}
