/**
 * A local LLM server that speaks the providers' real wire formats, so the
 * example app, the demo and the tests run the real SDK clients (`ai` +
 * `@ai-sdk/*`, `openai`, `@anthropic-ai/sdk`) end to end on 127.0.0.1:
 *
 *   POST /<label>/…/chat/completions                     OpenAI chat completions (also Azure, Friendli, Ollama)
 *   POST /anthropic/v1/messages                          Anthropic messages
 *   POST /google/v1beta/models/<model>:generateContent   Google generateContent
 *   POST /google/v1beta/models/<model>:streamGenerateContent?alt=sse
 *   POST /bedrock/model/<model>/converse[-stream]        Amazon Bedrock Converse (AWS event stream)
 *
 * A call without a key gets 401 (except under /ollama, which needs none). A
 * model named `wire-error-<status>` gets that status, to test how callers
 * handle a provider's refusal.
 *
 * Every one answers without streaming or streaming (SSE, or the AWS event
 * stream for Bedrock), one word every `tokenDelayMs`. It records the key and
 * the model of every call — the key only as a fingerprint and a mask, never
 * in clear — and whether the caller went away before the answer was
 * complete. Answers name the model and the key's fingerprint, so a caller can
 * check which configuration reached the wire.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';

/** The wire format a call used. */
export type WireFormat = 'openai' | 'anthropic' | 'google' | 'bedrock';

/** One call as it reached the server. */
export interface WireCall {
  readonly id: number;
  readonly format: WireFormat;
  /** First path segment: `openai`, `azure`, `friendli`, `ollama`, `anthropic`, … */
  readonly label: string;
  readonly model: string;
  /** First 12 hex digits of SHA-256 of the key; `null` when none was sent. */
  readonly keyHash: string | null;
  /** The key masked to its last 4 characters (`…x7Qa`); `null` when none was sent. */
  readonly keyMasked: string | null;
  readonly stream: boolean;
  /** The prompt's text (its first 200 characters), to tell calls apart. */
  readonly prompt: string;
  readonly startedAt: number;
  /** The answer was sent completely. */
  finished: boolean;
  /** The caller disconnected before the answer was complete. */
  aborted: boolean;
  /** The token usage the answer reported (what a provider bills the key for); `null` until it was sent. */
  usage: { inputTokens: number; outputTokens: number } | null;
}

export interface WireServerOptions {
  /**
   * Delay between two streamed words (and before a non-streamed answer), ms.
   * @default 2
   */
  tokenDelayMs?: number;
  /**
   * Words of the prompt echoed in an answer, after `[label/model key:…] answered N words:`.
   * @default 6
   */
  words?: number;
  /**
   * Most calls kept in `calls` (the oldest go first), for long runs.
   * @default 100_000
   */
  maxRecords?: number;
  /**
   * Port on 127.0.0.1.
   * @default 0 (any free port)
   */
  port?: number;
}

export interface WireServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every call so far, oldest first. */
  readonly calls: readonly WireCall[];
  /** Resolves once the call with this id has finished or was aborted. */
  settled(id: number): Promise<WireCall>;
  /** Forgets the recorded calls. */
  reset(): void;
  close(): Promise<void>;
}

/** The fingerprint the server records for a key (and puts in its answers). */
export function keyFingerprint(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/** A key masked to its last 4 characters. */
export function maskKey(key: string): string {
  return key.length <= 8 ? '…' : `…${key.slice(-4)}`;
}

class WireError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export async function startWireServer(options: WireServerOptions = {}): Promise<WireServer> {
  const { tokenDelayMs = 2, words: maxWords = 6, port = 0, maxRecords = 100_000 } = options;
  const calls: WireCall[] = [];
  const waiters = new Map<number, Array<(call: WireCall) => void>>();
  let nextId = 1;

  const settle = (call: WireCall): void => {
    for (const resolve of waiters.get(call.id) ?? []) resolve(call);
    waiters.delete(call.id);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof WireError ? error.status : 500;
      if (!res.headersSent) {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: error instanceof Error ? error.message : String(error), type: 'invalid_request_error', code: status } }));
      } else {
        res.destroy();
      }
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'POST') throw new WireError(405, 'POST only');
    const body = await readBody(req);
    const label = url.pathname.split('/')[1] ?? '';
    const route = routeOf(url, label, body);
    const key = keyOf(req, route.format);
    const words = promptWords(body, route.format);
    const call: WireCall = {
      id: nextId++,
      format: route.format,
      label,
      model: route.model,
      keyHash: key === null ? null : keyFingerprint(key),
      keyMasked: key === null ? null : maskKey(key),
      stream: route.stream,
      prompt: words.join(' ').slice(0, 200),
      startedAt: Date.now(),
      finished: false,
      aborted: false,
      usage: null,
    };
    calls.push(call);
    if (calls.length > maxRecords) calls.splice(0, calls.length - maxRecords);
    res.once('close', () => {
      if (!call.finished) call.aborted = true;
      settle(call);
    });
    // Ollama serves without a key; every other provider refuses a call without one.
    if (key === null && label !== 'ollama') throw new WireError(401, `No API key was sent to ${label}.`);
    const injected = /^wire-error-(\d{3})$/.exec(route.model)?.[1];
    if (injected !== undefined) throw new WireError(Number(injected), `The provider refused the call (${injected}).`);
    const text = [`[${label}/${route.model} key:${call.keyHash}]`, 'answered', `${words.length}`, 'words:', ...words].slice(0, 4 + maxWords);
    const writer = WRITERS[route.format];
    if (!route.stream) {
      await sleep(tokenDelayMs);
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(writer.whole(route.model, text.join(' '))));
      // As every writer's whole() reports it.
      call.usage = { inputTokens: 5, outputTokens: text.join(' ').split(' ').length };
      call.finished = true;
      return;
    }
    res.writeHead(200, writer.streamHeaders);
    res.flushHeaders();
    for (const frame of writer.start(route.model)) res.write(frame);
    for (let i = 0; i < text.length; i++) {
      await sleep(tokenDelayMs);
      if (res.destroyed) return;
      res.write(writer.delta(route.model, i === 0 ? text[i]! : ` ${text[i]!}`));
    }
    if (res.destroyed) return;
    for (const frame of writer.end(route.model, text.length)) res.write(frame);
    // As every writer's end() reports it.
    call.usage = { inputTokens: 5, outputTokens: text.length };
    call.finished = true;
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    calls,
    settled(id: number): Promise<WireCall> {
      const call = calls.find((c) => c.id === id);
      if (call !== undefined && (call.finished || call.aborted)) return Promise.resolve(call);
      return new Promise((resolve) => waiters.set(id, [...(waiters.get(id) ?? []), resolve]));
    },
    reset(): void {
      calls.length = 0;
    },
    async close(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Route {
  format: WireFormat;
  model: string;
  stream: boolean;
}

function routeOf(url: URL, label: string, body: Record<string, unknown>): Route {
  const path = url.pathname;
  if (path.endsWith('/chat/completions')) {
    // Azure's deployment-based URLs name the model in the path.
    const deployment = /\/deployments\/([^/]+)\/chat\/completions$/.exec(path)?.[1];
    return { format: 'openai', model: deployment ? decodeURIComponent(deployment) : stringOf(body['model']), stream: body['stream'] === true };
  }
  if (label === 'anthropic' && path.endsWith('/messages')) {
    return { format: 'anthropic', model: stringOf(body['model']), stream: body['stream'] === true };
  }
  const google = /\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(path);
  if (google) return { format: 'google', model: decodeURIComponent(google[1]!), stream: google[2] === 'streamGenerateContent' };
  const bedrock = /\/model\/([^/]+)\/(converse|converse-stream)$/.exec(path);
  if (bedrock) return { format: 'bedrock', model: decodeURIComponent(bedrock[1]!), stream: bedrock[2] === 'converse-stream' };
  throw new WireError(404, `No wire format at ${path}.`);
}

/** The key as each provider sends it. */
function keyOf(req: IncomingMessage, format: WireFormat): string | null {
  const header = (name: string): string | null => {
    const v = req.headers[name];
    return typeof v === 'string' && v !== '' ? v : null;
  };
  const bearer = /^Bearer (.+)$/i.exec(header('authorization') ?? '')?.[1] ?? null;
  switch (format) {
    case 'openai':
      return header('api-key') ?? bearer;
    case 'anthropic':
      return header('x-api-key') ?? bearer;
    case 'google':
      return header('x-goog-api-key') ?? new URL(req.url ?? '/', 'http://x').searchParams.get('key');
    case 'bedrock': {
      // API key (Bearer) or SigV4: record the access key id.
      const sigv4 = /Credential=([^/,\s]+)\//.exec(header('authorization') ?? '')?.[1];
      return sigv4 ?? bearer;
    }
  }
}

function promptWords(body: Record<string, unknown>, format: WireFormat): string[] {
  let text = '';
  const collect = (value: unknown): void => {
    if (typeof value === 'string') text += ` ${value}`;
    else if (Array.isArray(value)) value.forEach(collect);
    else if (value !== null && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      if (typeof o['text'] === 'string') text += ` ${o['text']}`;
      else if ('content' in o) collect(o['content']);
      else if ('parts' in o) collect(o['parts']);
    }
  };
  collect(format === 'google' ? body['contents'] : body['messages']);
  return text.trim().split(/\s+/).filter(Boolean);
}

interface Writer {
  whole(model: string, text: string): unknown;
  streamHeaders: Record<string, string>;
  start(model: string): Array<string | Buffer>;
  delta(model: string, text: string): string | Buffer;
  end(model: string, tokens: number): Array<string | Buffer>;
}

const SSE = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };
const sse = (data: unknown, event?: string): string => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
const created = (): number => Math.floor(Date.now() / 1000);

const WRITERS: Record<WireFormat, Writer> = {
  openai: {
    whole: (model, text) => ({
      id: 'chatcmpl-wire', object: 'chat.completion', created: created(), model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: text.split(' ').length, total_tokens: 5 + text.split(' ').length },
    }),
    streamHeaders: SSE,
    start: (model) => [sse({ id: 'chatcmpl-wire', object: 'chat.completion.chunk', created: created(), model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })],
    delta: (model, text) => sse({ id: 'chatcmpl-wire', object: 'chat.completion.chunk', created: created(), model, choices: [{ index: 0, delta: { content: text }, finish_reason: null }] }),
    end: (model, tokens) => [
      sse({ id: 'chatcmpl-wire', object: 'chat.completion.chunk', created: created(), model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: tokens, total_tokens: 5 + tokens } }),
      'data: [DONE]\n\n',
    ],
  },
  anthropic: {
    whole: (model, text) => ({
      id: 'msg_wire', type: 'message', role: 'assistant', model,
      content: [{ type: 'text', text }], stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: text.split(' ').length },
    }),
    streamHeaders: SSE,
    start: (model) => [
      sse({ type: 'message_start', message: { id: 'msg_wire', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 0 } } }, 'message_start'),
      sse({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'),
    ],
    delta: (_model, text) => sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }, 'content_block_delta'),
    end: (_model, tokens) => [
      sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
      sse({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: tokens } }, 'message_delta'),
      sse({ type: 'message_stop' }, 'message_stop'),
    ],
  },
  google: {
    whole: (model, text) => ({
      candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: 5, candidatesTokenCount: text.split(' ').length, totalTokenCount: 5 + text.split(' ').length },
      modelVersion: model,
    }),
    streamHeaders: SSE,
    start: () => [],
    delta: (model, text) => sse({ candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0 }], modelVersion: model }),
    end: (model, tokens) => [
      sse({ candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: 'STOP', index: 0 }], usageMetadata: { promptTokenCount: 5, candidatesTokenCount: tokens, totalTokenCount: 5 + tokens }, modelVersion: model }),
    ],
  },
  bedrock: {
    whole: (_model, text) => ({
      output: { message: { role: 'assistant', content: [{ text }] } },
      stopReason: 'end_turn',
      usage: { inputTokens: 5, outputTokens: text.split(' ').length, totalTokens: 5 + text.split(' ').length },
      metrics: { latencyMs: 1 },
    }),
    streamHeaders: { 'content-type': 'application/vnd.amazon.eventstream' },
    start: () => [eventFrame('messageStart', { role: 'assistant' })],
    delta: (_model, text) => eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text } }),
    end: (_model, tokens) => [
      eventFrame('contentBlockStop', { contentBlockIndex: 0 }),
      eventFrame('messageStop', { stopReason: 'end_turn' }),
      eventFrame('metadata', { usage: { inputTokens: 5, outputTokens: tokens, totalTokens: 5 + tokens }, metrics: { latencyMs: 1 } }),
    ],
  },
};

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

function stringOf(value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new WireError(400, 'The request names no model.');
  return value;
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch {
    throw new WireError(400, 'The body is not JSON.');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
