/**
 * The agent loop route of the example app: the user's own LLM (from the
 * koa-user-context/ai registry) calls the user's own MCP tools
 * (`getUserTools()`), step after step, up to a step limit.
 *
 *   POST /agent { prompt, stream?, maxSteps? }
 *     → 200 { user, provider, model, answer, steps, toolsOffered, toolCalls: [{ tool, server, ok }] }
 *     → with "stream": true or "Accept: text/event-stream": Server-Sent Events
 *       meta, token…, tool-call, tool-result | tool-error, done; a client that
 *       disconnects aborts the LLM stream and cancels the tool call in flight
 *     → 409 { error: "not_configured" } without a provider
 *
 * A tool that fails or times out is a tool error the model sees (the loop
 * goes on), never a 500.
 */
import { PassThrough } from 'node:stream';
import type { Router } from '../router.js';
import type Koa from 'koa';
import { stepCountIs, type ToolSet } from 'ai';
import { getUserLlm, getUserTools, userToolOrigin, type UserLlm } from '../../src/ai.js';
import { ClientDisconnectedError, currentUserUuid, getUserProvider, UsageLimitExceededError, UsageStoreUnavailableError } from '../../src/index.js';
import { HttpError, readJson } from '../body.js';
import { sseFrame, sseSender } from '../sse.js';

/** Most steps a client may ask for; the default is 5. */
const MAX_STEPS = 10;

interface LoopRequest {
  prompt: string;
  stream: boolean;
  maxSteps: number;
}

function parse(ctx: Koa.Context, body: Record<string, unknown>): LoopRequest {
  const { prompt, stream, maxSteps = 5 } = body;
  if (typeof prompt !== 'string' || prompt.trim() === '' || prompt.length > 10_000) {
    throw new HttpError(400, 'invalid_prompt', '"prompt" must be a non-empty string of at most 10 000 characters.');
  }
  if (stream !== undefined && typeof stream !== 'boolean') throw new HttpError(400, 'invalid_stream', '"stream" must be true or false.');
  if (!Number.isInteger(maxSteps) || (maxSteps as number) < 1 || (maxSteps as number) > MAX_STEPS) {
    throw new HttpError(400, 'invalid_max_steps', `"maxSteps" must be an integer from 1 to ${MAX_STEPS}.`);
  }
  const wantsSse = stream ?? ctx.accepts('application/json', 'text/event-stream') === 'text/event-stream';
  return { prompt, stream: wantsSse, maxSteps: maxSteps as number };
}

async function userLlm(): Promise<UserLlm> {
  const llm = getUserProvider() === null ? null : await getUserLlm();
  if (llm === null) throw new HttpError(409, 'not_configured', 'Choose a provider and model first: POST /configure { "provider", "model" }.');
  return llm;
}

/** A tool call as the answer reports it: the prefixed name, the server that ran it. */
const called = (tools: ToolSet, name: string, ok: boolean) => ({ tool: name, server: userToolOrigin(tools, name)?.server ?? null, ok });

/** Adds POST /agent to `router`. */
export function registerAgentLoop(router: Router): void {
  router.post('/agent', async (ctx) => {
    const request = parse(ctx, await readJson(ctx));
    const llm = await userLlm();
    const tools = await getUserTools();
    const head = { user: currentUserUuid(), provider: llm.provider, model: llm.model, toolsOffered: Object.keys(tools) };
    if (!request.stream) {
      const result = await llm.generateText({ prompt: request.prompt, tools, stopWhen: stepCountIs(request.maxSteps) });
      const failed = new Set(result.steps.flatMap((s) => s.content.filter((p) => p.type === 'tool-error').map((p) => p.toolCallId)));
      ctx.body = {
        ...head,
        answer: result.text,
        steps: result.steps.length,
        toolCalls: result.steps.flatMap((s) => s.toolCalls.map((c) => called(tools, c.toolName, !failed.has(c.toolCallId)))),
      };
      return;
    }
    streamLoop(ctx, llm, tools, request, head);
  });
}

/**
 * The loop as Server-Sent Events, produced inside the request's scope by a
 * task that outlives the handler (Koa writes the body after it returns; the
 * middleware keeps the scope until the response is done).
 */
function streamLoop(ctx: Koa.Context, llm: UserLlm, tools: ToolSet, request: LoopRequest, head: Record<string, unknown>): void {
  const out = new PassThrough();
  const send = sseSender(out);
  const produce = async (): Promise<void> => {
    await send('meta', head);
    const result = llm.streamText({ prompt: request.prompt, tools, stopWhen: stepCountIs(request.maxSteps) });
    const calls: ReturnType<typeof called>[] = [];
    let steps = 0;
    let answer = '';
    for await (const part of result.fullStream) {
      switch (part.type) {
        case 'text-delta': {
          // `text` on AI SDK 6 and 7 (`delta` in some 7 builds).
          const text = (part as { text?: string; delta?: string }).text ?? (part as { delta?: string }).delta ?? '';
          answer += text;
          await send('token', { text });
          break;
        }
        case 'tool-call':
          await send('tool-call', { id: part.toolCallId, ...called(tools, part.toolName, true), input: part.input });
          break;
        case 'tool-result': {
          calls.push(called(tools, part.toolName, true));
          const output = part.output as { text?: unknown } | undefined;
          await send('tool-result', { id: part.toolCallId, tool: part.toolName, text: typeof output?.text === 'string' ? output.text : null });
          break;
        }
        case 'tool-error':
          calls.push(called(tools, part.toolName, false));
          await send('tool-error', { id: part.toolCallId, tool: part.toolName, message: part.error instanceof Error ? part.error.message : String(part.error) });
          break;
        case 'finish-step':
          steps++;
          break;
        case 'error':
          throw part.error;
        default:
          break;
      }
    }
    await send('done', { answer, steps, toolCalls: calls });
    out.end();
  };
  produce().catch((error: unknown) => {
    if (error instanceof ClientDisconnectedError || (error as { name?: unknown } | null)?.name === 'AbortError' || out.destroyed) {
      out.destroy();
      return;
    }
    // A usage limit (or the usage store) refused a step: the loop ends with that code (docs/usage-limits.md).
    if (error instanceof UsageLimitExceededError || error instanceof UsageStoreUnavailableError) {
      out.end(sseFrame('error', { error: error.error, message: error.message, retryAfter: Number(error.headers?.['Retry-After']) }));
      return;
    }
    out.end(sseFrame('error', { error: 'stream_failed', message: 'The answer could not be completed.' }));
    ctx.app.emit('error', error, ctx);
  });
  ctx.status = 200;
  ctx.type = 'text/event-stream';
  ctx.set('Cache-Control', 'no-cache, no-transform');
  ctx.set('X-Accel-Buffering', 'no');
  ctx.body = out;
}
