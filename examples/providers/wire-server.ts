/**
 * A local LLM server that speaks the providers' real wire formats, so the
 * example app, the demo and the tests run the real SDK clients (`ai` +
 * `@ai-sdk/*`, `openai`, `@anthropic-ai/sdk`) end to end on 127.0.0.1:
 *
 *   POST /<label>/…/chat/completions                     OpenAI chat completions (also Azure, Friendli, Ollama)
 *   POST /<label>/…/responses                            OpenAI Responses API
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
 *
 * Tools: when a request offers tools and the user's text holds
 * `call <tool> <json-args>` directives, the answer is a tool call in the
 * provider's own format, one directive per step; once the results come back,
 * a final text quotes them (the convention: examples/providers/wire-tools.ts).
 * Each call records the tools offered, the tool results received and the tool
 * call answered.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { piecesOf, WRITERS } from './wire-formats.js';
import { decide, readConversation, type WireFormat, type WireToolCall, type WireToolResult } from './wire-tools.js';
import { usageReported } from './wire-usage.js';

export type { WireFormat, WireToolCall, WireToolResult } from './wire-tools.js';
export { directivesOf, resolveTool } from './wire-tools.js';

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
  /** The prompt's text (its first 200 characters, tool results left out), to tell calls apart. */
  readonly prompt: string;
  /** Names of the tools the request offered. */
  readonly toolsOffered: readonly string[];
  /** Tool results the request carried back, oldest first. */
  readonly toolResults: readonly WireToolResult[];
  /** The tool call the server answered with, or `null` for a text answer. */
  toolCall: WireToolCall | null;
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
    const conversation = readConversation(route.format, body);
    const words = conversation.words;
    const call: WireCall = {
      id: nextId++,
      format: route.format,
      label,
      model: route.model,
      keyHash: key === null ? null : keyFingerprint(key),
      keyMasked: key === null ? null : maskKey(key),
      stream: route.stream,
      prompt: words.join(' ').slice(0, 200),
      toolsOffered: Object.freeze(conversation.tools),
      toolResults: Object.freeze(conversation.results),
      toolCall: null,
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
    const head = `[${label}/${route.model} key:${call.keyHash}]`;
    const answer = decide(conversation, call.id, head, () => [head, 'answered', `${words.length}`, 'words:', ...words].slice(0, 4 + maxWords).join(' '));
    if (answer.type === 'tool') call.toolCall = answer.call;
    const reply = { model: route.model, seq: call.id, answer };
    const writer = WRITERS[route.format];
    if (!route.stream) {
      await sleep(tokenDelayMs);
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      const whole = writer.whole(reply);
      res.end(JSON.stringify(whole));
      call.usage = usageReported([whole]);
      call.finished = true;
      return;
    }
    res.writeHead(200, writer.streamHeaders);
    res.flushHeaders();
    const opening = writer.start(reply);
    for (const frame of opening) res.write(frame);
    const pieces = piecesOf(answer);
    for (const piece of pieces) {
      await sleep(tokenDelayMs);
      if (res.destroyed) return;
      res.write(writer.delta(reply, piece));
    }
    if (res.destroyed) return;
    const closing = writer.end(reply, pieces.length);
    for (const frame of closing) res.write(frame);
    call.usage = usageReported([...opening, ...closing]);
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
  if (path.endsWith('/responses')) return { format: 'responses', model: stringOf(body['model']), stream: body['stream'] === true };
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
    case 'responses':
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
