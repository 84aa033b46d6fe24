/**
 * The AI SDK language-model middleware that meters a user's LLM client:
 * every model call (each step of a loop, streamed or not) is admitted by the
 * {@link UsageMeter} before it goes out and booked with the SDK's own usage
 * report when it ends (`result.usage`, or the stream's `finish` part). A
 * loop's model also counts the tool calls the model asks for, and ends the
 * loop with `UsageLimitExceededError` when they pass `toolCallsPerLoop`.
 *
 * Loaded by the registry (koa-user-context/ai) only; the root entry never
 * loads `ai`.
 *
 * @internal
 * @module
 */
import { wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import type { UsageLimitExceededError } from '../errors.js';
import type { LanguageModelObject } from '../agents/ai/providers.js';
import type { CallTarget, ReportedUsage, UsageMeter, UsageTicket } from './meter.js';

/** One agent loop (one `UserLlm.generateText` / `streamText` call). */
export interface LoopState {
  toolCalls: number;
  /** Set once the loop passed a limit: every later step fails with it. */
  ended: UsageLimitExceededError | undefined;
}

/** What the registry binds a client's usage to. */
export interface UsageBinding {
  readonly meter: UsageMeter;
  readonly target: CallTarget;
}

/** `model`, metered for `binding`; with `loop`, its tool calls count against the loop's limit. */
export function meteredModel(model: LanguageModelObject, binding: UsageBinding, loop?: LoopState): LanguageModelObject {
  const { meter, target } = binding;

  const admit = async (params: { prompt: unknown; maxOutputTokens?: number | undefined }): Promise<UsageTicket> => {
    if (loop?.ended !== undefined) throw loop.ended;
    return meter.admit(target, { promptChars: JSON.stringify(params.prompt)?.length ?? 0, maxOutputTokens: params.maxOutputTokens });
  };

  /** Counts `n` more tool calls of the loop; the refusal when they pass the limit. */
  const overLimit = (n: number): UsageLimitExceededError | undefined => {
    if (loop === undefined || n === 0) return undefined;
    loop.toolCalls += n;
    const max = meter.limitsOf(target.userUuid).toolCallsPerLoop;
    if (max === undefined || loop.toolCalls <= max) return undefined;
    return (loop.ended ??= meter.refuseToolCalls(target.userUuid));
  };

  // 'v3' is what ai 6 requires; ai 7 accepts it (and ignores it at run time).
  const middleware: LanguageModelMiddleware = {
    specificationVersion: 'v3',
    wrapGenerate: async ({ doGenerate, params }) => {
      const ticket = await admit(params);
      let result;
      try {
        result = await doGenerate();
      } catch (error) {
        ticket.fail(error);
        throw error;
      }
      ticket.finish(result.usage as ReportedUsage);
      const refusal = overLimit(result.content.filter((part) => part.type === 'tool-call').length);
      if (refusal !== undefined) throw refusal;
      return result;
    },
    wrapStream: async ({ doStream, params }) => {
      const ticket = await admit(params);
      let result;
      try {
        result = await doStream();
      } catch (error) {
        ticket.fail(error);
        throw error;
      }
      type Part = typeof result.stream extends ReadableStream<infer P> ? P : never;
      const reader = result.stream.getReader();
      let usage: ReportedUsage | undefined;
      let failure: unknown;
      let refusal: UsageLimitExceededError | undefined;
      const stream = new ReadableStream<Part>({
        async pull(controller) {
          let next: Awaited<ReturnType<typeof reader.read>>;
          try {
            next = await reader.read();
          } catch (error) {
            ticket.fail(error);
            controller.error(error);
            return;
          }
          if (next.done) {
            if (failure !== undefined || usage === undefined) ticket.fail(failure, usage);
            else ticket.finish(usage);
            controller.close();
            return;
          }
          const part = next.value;
          if (part.type === 'finish') {
            usage = part.usage as ReportedUsage;
            // Past the tool-call limit the step ends with the refusal (the SDK then closes the loop: finish-step, finish).
            if (refusal !== undefined) controller.enqueue({ type: 'error', error: refusal } as Part);
          } else if (part.type === 'error') {
            failure = part.error;
          } else if (part.type === 'tool-call') {
            refusal ??= overLimit(1);
          }
          // The refused tool call (and any after it) never reaches the SDK, which would run it.
          if (refusal !== undefined && part.type.startsWith('tool-')) return;
          controller.enqueue(part);
        },
        async cancel(reason) {
          ticket.fail(reason instanceof Error ? reason : Object.assign(new Error('The stream was cancelled.'), { name: 'AbortError' }));
          await reader.cancel(reason);
        },
      });
      return { ...result, stream };
    },
  };
  return wrapLanguageModel({ model: model as Parameters<typeof wrapLanguageModel>[0]['model'], middleware }) as LanguageModelObject;
}
