/**
 * How the wire server writes an answer (a text, or a tool call) in each
 * provider's format: the whole JSON body, or the stream's frames (SSE, or
 * the AWS event stream for Bedrock).
 *
 * @module
 */
import { crc32 } from 'node:zlib';
import type { Answer, WireFormat, WireToolCall } from './wire-tools.js';

/** What every frame of one answer shares. */
export interface Reply {
  readonly model: string;
  /** The call's sequence number, for ids. */
  readonly seq: number;
  readonly answer: Answer;
}

export interface Writer {
  whole(reply: Reply): unknown;
  readonly streamHeaders: Record<string, string>;
  start(reply: Reply): Array<string | Buffer>;
  /** One piece: a word of the text, or a slice of the tool call's JSON arguments. */
  delta(reply: Reply, piece: string): string | Buffer;
  end(reply: Reply, pieces: number): Array<string | Buffer>;
}

/** The pieces an answer is streamed in: its words, or its arguments' JSON in three slices. */
export function piecesOf(answer: Answer): string[] {
  if (answer.type === 'text') return answer.text.split(' ').map((w, i) => (i === 0 ? w : ` ${w}`));
  const json = JSON.stringify(answer.call.args);
  const third = Math.ceil(json.length / 3);
  return [json.slice(0, third), json.slice(third, 2 * third), json.slice(2 * third)].filter(Boolean);
}

const SSE = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };
const sse = (data: unknown, event?: string): string => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
const created = (): number => Math.floor(Date.now() / 1000);
const tokensOf = (answer: Answer): number => (answer.type === 'text' ? answer.text.split(' ').length : 8);
const args = (call: WireToolCall): string => JSON.stringify(call.args);

const chunk = (r: Reply, delta: unknown, finish: string | null = null, extra: Record<string, unknown> = {}): string =>
  sse({ id: `chatcmpl-wire-${r.seq}`, object: 'chat.completion.chunk', created: created(), model: r.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra });

/** The Responses API's output item of an answer. */
function responsesItem(r: Reply, done: boolean): Record<string, unknown> {
  const status = done ? 'completed' : 'in_progress';
  if (r.answer.type === 'tool') {
    const c = r.answer.call;
    return { type: 'function_call', id: `fc_wire_${r.seq}`, call_id: c.id, name: c.name, arguments: done ? args(c) : '', status };
  }
  return {
    type: 'message', id: `msg_wire_${r.seq}`, role: 'assistant', status,
    content: done ? [{ type: 'output_text', text: r.answer.text, annotations: [], logprobs: [] }] : [],
  };
}

function responsesBody(r: Reply, done: boolean): Record<string, unknown> {
  const output = tokensOf(r.answer);
  return {
    id: `resp_wire_${r.seq}`, object: 'response', created_at: created(), model: r.model,
    status: done ? 'completed' : 'in_progress', error: null, incomplete_details: null, instructions: null,
    output: done ? [responsesItem(r, true)] : [], parallel_tool_calls: false, tool_choice: 'auto', tools: [],
    usage: done
      ? { input_tokens: 5, input_tokens_details: { cached_tokens: 0 }, output_tokens: output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 5 + output }
      : null,
  };
}

let sequence = 0;
const event = (type: string, data: Record<string, unknown>): string => sse({ type, sequence_number: sequence++, ...data }, type);

export const WRITERS: Record<WireFormat, Writer> = {
  openai: {
    whole: (r) => {
      const message = r.answer.type === 'text'
        ? { role: 'assistant', content: r.answer.text }
        : { role: 'assistant', content: null, tool_calls: [{ id: r.answer.call.id, type: 'function', function: { name: r.answer.call.name, arguments: args(r.answer.call) } }] };
      const tokens = tokensOf(r.answer);
      return {
        id: `chatcmpl-wire-${r.seq}`, object: 'chat.completion', created: created(), model: r.model,
        choices: [{ index: 0, message, finish_reason: r.answer.type === 'text' ? 'stop' : 'tool_calls' }],
        usage: { prompt_tokens: 5, completion_tokens: tokens, total_tokens: 5 + tokens },
      };
    },
    streamHeaders: SSE,
    start: (r) => [
      chunk(r, { role: 'assistant', content: r.answer.type === 'text' ? '' : null }),
      ...(r.answer.type === 'tool' ? [chunk(r, { tool_calls: [{ index: 0, id: r.answer.call.id, type: 'function', function: { name: r.answer.call.name, arguments: '' } }] })] : []),
    ],
    delta: (r, piece) => chunk(r, r.answer.type === 'text' ? { content: piece } : { tool_calls: [{ index: 0, function: { arguments: piece } }] }),
    end: (r, pieces) => [
      chunk(r, {}, r.answer.type === 'text' ? 'stop' : 'tool_calls', { usage: { prompt_tokens: 5, completion_tokens: pieces, total_tokens: 5 + pieces } }),
      'data: [DONE]\n\n',
    ],
  },
  responses: {
    whole: (r) => responsesBody(r, true),
    streamHeaders: SSE,
    start: (r) => [
      event('response.created', { response: responsesBody(r, false) }),
      event('response.in_progress', { response: responsesBody(r, false) }),
      event('response.output_item.added', { output_index: 0, item: responsesItem(r, false) }),
      ...(r.answer.type === 'text'
        ? [event('response.content_part.added', { item_id: `msg_wire_${r.seq}`, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } })]
        : []),
    ],
    delta: (r, piece) =>
      r.answer.type === 'text'
        ? event('response.output_text.delta', { item_id: `msg_wire_${r.seq}`, output_index: 0, content_index: 0, delta: piece, logprobs: [] })
        : event('response.function_call_arguments.delta', { item_id: `fc_wire_${r.seq}`, output_index: 0, delta: piece }),
    end: (r) => [
      ...(r.answer.type === 'text'
        ? [
            event('response.output_text.done', { item_id: `msg_wire_${r.seq}`, output_index: 0, content_index: 0, text: r.answer.text, logprobs: [] }),
            event('response.content_part.done', { item_id: `msg_wire_${r.seq}`, output_index: 0, content_index: 0, part: { type: 'output_text', text: r.answer.text, annotations: [] } }),
          ]
        : [event('response.function_call_arguments.done', { item_id: `fc_wire_${r.seq}`, output_index: 0, arguments: args(r.answer.call) })]),
      event('response.output_item.done', { output_index: 0, item: responsesItem(r, true) }),
      event('response.completed', { response: responsesBody(r, true) }),
    ],
  },
  anthropic: {
    whole: (r) => ({
      id: `msg_wire_${r.seq}`, type: 'message', role: 'assistant', model: r.model,
      content: r.answer.type === 'text' ? [{ type: 'text', text: r.answer.text }] : [{ type: 'tool_use', id: r.answer.call.id, name: r.answer.call.name, input: r.answer.call.args }],
      stop_reason: r.answer.type === 'text' ? 'end_turn' : 'tool_use', stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: tokensOf(r.answer) },
    }),
    streamHeaders: SSE,
    start: (r) => [
      sse({ type: 'message_start', message: { id: `msg_wire_${r.seq}`, type: 'message', role: 'assistant', model: r.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 0 } } }, 'message_start'),
      sse({
        type: 'content_block_start', index: 0,
        content_block: r.answer.type === 'text' ? { type: 'text', text: '' } : { type: 'tool_use', id: r.answer.call.id, name: r.answer.call.name, input: {} },
      }, 'content_block_start'),
    ],
    delta: (r, piece) =>
      sse({ type: 'content_block_delta', index: 0, delta: r.answer.type === 'text' ? { type: 'text_delta', text: piece } : { type: 'input_json_delta', partial_json: piece } }, 'content_block_delta'),
    end: (r, pieces) => [
      sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
      sse({ type: 'message_delta', delta: { stop_reason: r.answer.type === 'text' ? 'end_turn' : 'tool_use', stop_sequence: null }, usage: { output_tokens: pieces } }, 'message_delta'),
      sse({ type: 'message_stop' }, 'message_stop'),
    ],
  },
  google: {
    whole: (r) => ({
      candidates: [{ content: { role: 'model', parts: [googlePart(r.answer)] }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: 5, candidatesTokenCount: tokensOf(r.answer), totalTokenCount: 5 + tokensOf(r.answer) },
      modelVersion: r.model,
    }),
    streamHeaders: SSE,
    start: () => [],
    // A function call comes whole in one chunk (Gemini does not stream arguments): the pieces carry nothing.
    delta: (r, piece) =>
      r.answer.type === 'text' ? sse({ candidates: [{ content: { role: 'model', parts: [{ text: piece }] }, index: 0 }], modelVersion: r.model }) : '',
    end: (r, pieces) => [
      sse({
        candidates: [{ content: { role: 'model', parts: [r.answer.type === 'text' ? { text: '' } : googlePart(r.answer)] }, finishReason: 'STOP', index: 0 }],
        usageMetadata: { promptTokenCount: 5, candidatesTokenCount: pieces, totalTokenCount: 5 + pieces },
        modelVersion: r.model,
      }),
    ],
  },
  bedrock: {
    whole: (r) => ({
      output: { message: { role: 'assistant', content: [r.answer.type === 'text' ? { text: r.answer.text } : { toolUse: { toolUseId: r.answer.call.id, name: r.answer.call.name, input: r.answer.call.args } }] } },
      stopReason: r.answer.type === 'text' ? 'end_turn' : 'tool_use',
      usage: { inputTokens: 5, outputTokens: tokensOf(r.answer), totalTokens: 5 + tokensOf(r.answer) },
      metrics: { latencyMs: 1 },
    }),
    streamHeaders: { 'content-type': 'application/vnd.amazon.eventstream' },
    start: (r) => [
      eventFrame('messageStart', { role: 'assistant' }),
      ...(r.answer.type === 'tool' ? [eventFrame('contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: r.answer.call.id, name: r.answer.call.name } } })] : []),
    ],
    delta: (r, piece) => eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: r.answer.type === 'text' ? { text: piece } : { toolUse: { input: piece } } }),
    end: (r, pieces) => [
      eventFrame('contentBlockStop', { contentBlockIndex: 0 }),
      eventFrame('messageStop', { stopReason: r.answer.type === 'text' ? 'end_turn' : 'tool_use' }),
      eventFrame('metadata', { usage: { inputTokens: 5, outputTokens: pieces, totalTokens: 5 + pieces }, metrics: { latencyMs: 1 } }),
    ],
  },
};

function googlePart(answer: Answer): Record<string, unknown> {
  return answer.type === 'text' ? { text: answer.text } : { functionCall: { name: answer.call.name, args: answer.call.args } };
}

/** One AWS event-stream message (prelude, string headers, JSON payload, CRCs). */
function eventFrame(eventType: string, payload: unknown): Buffer {
  const header = (name: string, value: string): Buffer => {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    const out = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
    out.writeUInt8(n.length, 0);
    n.copy(out, 1);
    out.writeUInt8(7, 1 + n.length); // string
    out.writeUInt16BE(v.length, 2 + n.length);
    v.copy(out, 4 + n.length);
    return out;
  };
  const headers = Buffer.concat([header(':event-type', eventType), header(':content-type', 'application/json'), header(':message-type', 'event')]);
  const body = Buffer.from(JSON.stringify(payload));
  const total = 12 + headers.length + body.length + 4;
  const prelude = Buffer.alloc(12);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(headers.length, 4);
  prelude.writeUInt32BE(crc32(prelude.subarray(0, 8)), 8);
  const message = Buffer.concat([prelude, headers, body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(message), 0);
  return Buffer.concat([message, crc]);
}
