/**
 * What the wire server's "model" reads in a request and decides: the
 * conversation of each provider format (the user's text, the tools offered,
 * the tool results sent back), and the documented convention that makes it
 * call tools.
 *
 * The convention: each `call <tool> <json-args>` in the user's text asks for
 * one tool call, in order (`<json-args>` is optional: `{}`). With `k` tool
 * results already in the conversation, the server answers the `k+1`-th
 * directive with a tool call, if tools are offered; a directive naming a tool
 * that was not offered gets a text saying so. Once every directive has its
 * result (or when no directive is left), the answer is a final text quoting
 * each tool result received. `<tool>` is an offered tool's name, or the part
 * after its prefix (`echo` finds `everything__echo`: the first offered tool
 * whose name ends with `__echo` or `_echo`).
 *
 * @module
 */

/** The formats the server speaks. */
export type WireFormat = 'openai' | 'responses' | 'anthropic' | 'google' | 'bedrock';

/** A tool result as it came back to the server. */
export interface WireToolResult {
  /** The provider's tool call id (Google has none: `null`). */
  readonly callId: string | null;
  /** The tool's name, as the server offered it. */
  readonly name: string;
  /** The result's text (its first 2 000 characters). */
  readonly text: string;
  /** The caller marked it as an error (Anthropic's `is_error`, Bedrock's `status: 'error'`, where the SDK sends them). */
  readonly isError: boolean;
}

/** A tool call the server answered with. */
export interface WireToolCall {
  readonly id: string;
  readonly name: string;
  readonly args: Record<string, unknown>;
}

/** What a request carries, whatever its format. */
export interface Conversation {
  /** The words of the system, user and assistant texts (no tool results). */
  readonly words: string[];
  /** The user's text alone, where the directives are read. */
  readonly userText: string;
  /** Names of the tools offered. */
  readonly tools: string[];
  /** Tool results in the conversation, oldest first. */
  readonly results: WireToolResult[];
}

/** The server's answer. */
export type Answer = { readonly type: 'text'; readonly text: string } | { readonly type: 'tool'; readonly call: WireToolCall };

const RESULT_CHARS = 2_000;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Text of a content value: a string, or parts with `text`. */
function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(textOf).filter(Boolean).join(' ');
  if (isObj(value)) {
    if (typeof value['text'] === 'string') return value['text'];
    if ('json' in value) return JSON.stringify(value['json']);
    if ('content' in value) return textOf(value['content']);
    if ('parts' in value) return textOf(value['parts']);
  }
  return '';
}

const resultText = (value: unknown): string => (typeof value === 'string' ? value : textOf(value) || JSON.stringify(value ?? null)).slice(0, RESULT_CHARS);

/** Tool call ids the server makes carry the tool's name, so a result that comes back with its id alone (the Responses API's `item_reference`) still names its tool. */
export function toolCallId(seq: number, name: string): string {
  return `call_wire_${seq}_${name}`;
}

function nameOfId(id: string, known: Map<string, string>): string {
  return known.get(id) ?? /^call_wire_\d+_(.+)$/.exec(id)?.[1] ?? '';
}

/** Reads a request body of `format`. */
export function readConversation(format: WireFormat, body: Obj): Conversation {
  const all: string[] = [];
  const user: string[] = [];
  const results: WireToolResult[] = [];
  const names = new Map<string, string>();
  const text = (role: string, value: unknown): void => {
    const t = textOf(value);
    if (t === '') return;
    all.push(t);
    if (role === 'user') user.push(t);
  };
  let tools: string[] = [];
  switch (format) {
    case 'openai':
      tools = arr(body['tools']).map((t) => (isObj(t) && isObj(t['function']) ? str(t['function']['name']) : ''));
      for (const m of arr(body['messages']).filter(isObj)) {
        const role = str(m['role']);
        for (const c of arr(m['tool_calls']).filter(isObj)) if (isObj(c['function'])) names.set(str(c['id']), str(c['function']['name']));
        if (role === 'tool') {
          const id = str(m['tool_call_id']);
          results.push({ callId: id, name: nameOfId(id, names), text: resultText(m['content']), isError: false });
        } else text(role, m['content']);
      }
      break;
    case 'responses':
      tools = arr(body['tools']).map((t) => (isObj(t) && t['type'] === 'function' ? str(t['name']) : ''));
      text('system', body['instructions']);
      for (const item of typeof body['input'] === 'string' ? [{ role: 'user', content: body['input'] }] : arr(body['input']).filter(isObj)) {
        if (item['type'] === 'function_call') names.set(str(item['call_id']), str(item['name']));
        else if (item['type'] === 'function_call_output') {
          const id = str(item['call_id']);
          results.push({ callId: id, name: nameOfId(id, names), text: resultText(item['output']), isError: false });
        } else if (typeof item['role'] === 'string') text(item['role'], item['content']);
      }
      break;
    case 'anthropic':
      tools = arr(body['tools']).map((t) => (isObj(t) ? str(t['name']) : ''));
      text('system', body['system']);
      for (const m of arr(body['messages']).filter(isObj)) {
        const role = str(m['role']);
        const parts = typeof m['content'] === 'string' ? [{ type: 'text', text: m['content'] }] : arr(m['content']).filter(isObj);
        for (const p of parts) {
          if (p['type'] === 'tool_use') names.set(str(p['id']), str(p['name']));
          else if (p['type'] === 'tool_result') {
            const id = str(p['tool_use_id']);
            results.push({ callId: id, name: nameOfId(id, names), text: resultText(p['content']), isError: p['is_error'] === true });
          } else if (p['type'] === 'text') text(role, p['text']);
        }
      }
      break;
    case 'google':
      tools = arr(body['tools']).flatMap((t) => (isObj(t) ? arr(t['functionDeclarations']) : [])).map((d) => (isObj(d) ? str(d['name']) : ''));
      text('system', isObj(body['systemInstruction']) ? body['systemInstruction']['parts'] : undefined);
      for (const c of arr(body['contents']).filter(isObj)) {
        for (const p of arr(c['parts']).filter(isObj)) {
          const response = p['functionResponse'];
          if (isObj(response)) {
            const r = isObj(response['response']) ? response['response'] : {};
            results.push({ callId: typeof response['id'] === 'string' ? response['id'] : null, name: str(response['name']), text: resultText('content' in r ? r['content'] : r), isError: false });
          } else if (typeof p['text'] === 'string') text(str(c['role']) || 'user', p['text']);
        }
      }
      break;
    case 'bedrock':
      tools = arr(isObj(body['toolConfig']) ? body['toolConfig']['tools'] : []).map((t) => (isObj(t) && isObj(t['toolSpec']) ? str(t['toolSpec']['name']) : ''));
      text('system', body['system']);
      for (const m of arr(body['messages']).filter(isObj)) {
        for (const p of arr(m['content']).filter(isObj)) {
          if (isObj(p['toolUse'])) names.set(str(p['toolUse']['toolUseId']), str(p['toolUse']['name']));
          else if (isObj(p['toolResult'])) {
            const r = p['toolResult'];
            const id = str(r['toolUseId']);
            results.push({ callId: id, name: nameOfId(id, names), text: resultText(r['content']), isError: r['status'] === 'error' });
          } else if (typeof p['text'] === 'string') text(str(m['role']), p['text']);
        }
      }
      break;
  }
  return {
    words: all.join(' ').trim().split(/\s+/).filter(Boolean),
    userText: user.join('\n'),
    tools: tools.filter(Boolean),
    results,
  };
}

/** One `call <tool> <json>` directive. */
export interface Directive {
  readonly name: string;
  readonly args: Record<string, unknown>;
}

/** The directives in `text`, in order. Arguments that are not a JSON object make it `{}`. */
export function directivesOf(text: string): Directive[] {
  const out: Directive[] = [];
  const re = /\bcall\s+([A-Za-z0-9_.-]+)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    let args: Record<string, unknown> = {};
    const rest = text.slice(re.lastIndex);
    const open = /^\s*\{/.exec(rest);
    if (open !== null) {
      const json = balanced(rest, open[0].length - 1);
      if (json !== null) {
        try {
          const parsed: unknown = JSON.parse(json);
          if (isObj(parsed)) args = parsed;
        } catch {
          // not JSON: no arguments
        }
        re.lastIndex += open[0].length - 1 + json.length;
      }
    }
    out.push({ name: m[1]!, args });
  }
  return out;
}

/** The `{…}` that starts at `from`, braces balanced (strings respected), or `null`. */
function balanced(text: string, from: number): string | null {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}' && --depth === 0) return text.slice(from, i + 1);
  }
  return null;
}

/** The offered tool a directive names: its exact name, else the first whose name ends with `__<name>` or `_<name>`. */
export function resolveTool(name: string, offered: readonly string[]): string | undefined {
  return offered.find((t) => t === name) ?? offered.find((t) => t.endsWith(`__${name}`)) ?? offered.find((t) => t.endsWith(`_${name}`));
}

/**
 * The answer to `conversation`: a tool call for the next directive, a final
 * text quoting the tool results, or (no tools involved) `plain`.
 */
export function decide(conversation: Conversation, seq: number, head: string, plain: () => string): Answer {
  const directives = directivesOf(conversation.userText);
  const done = conversation.results.length;
  if (conversation.tools.length > 0 && done < directives.length) {
    const directive = directives[done]!;
    const name = resolveTool(directive.name, conversation.tools);
    if (name === undefined) {
      return { type: 'text', text: `${head} no tool named ${directive.name} was offered (offered: ${conversation.tools.join(', ')})` };
    }
    return { type: 'tool', call: { id: toolCallId(seq, name), name, args: directive.args } };
  }
  if (done > 0) {
    const quoted = conversation.results.map((r) => `${r.name}${r.isError ? ' (error)' : ''} → ${r.text.replace(/\s+/g, ' ').slice(0, 300)}`);
    return { type: 'text', text: `${head} ${done} tool result${done === 1 ? '' : 's'}: ${quoted.join(' | ')}` };
  }
  return { type: 'text', text: plain() };
}
