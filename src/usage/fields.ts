/**
 * The one encoding of a user's usage counters, shared by every backend: a
 * flat map of field → integer (a Redis hash, or a Map in memory), and the one
 * decoder that turns it into a {@link UserUsage}. Fields hold names of the
 * operator's providers, models, MCP servers and error codes, never content.
 *
 * @internal
 * @module
 */
import type { UsageLimitName } from '../errors.js';
import type { ModelUsage, RawUsage, ToolServerUsage, UsageLimits, UserUsage } from './types.js';

const SEP = '\u001f';
/** Field holding the last call's time (ms since the epoch). */
export const LAST_CALL = 'at';
/** Field holding the last refusal's time. */
export const LAST_LIMITED = 'la';

const clean = (name: string): string => name.replace(/[\u0000-\u001f]/g, '').slice(0, 120);

/** The counters of one finished LLM call. */
export function llmCallCounters(
  provider: string,
  model: string,
  call: { inputTokens: number; outputTokens: number; latencyMs: number; errorCode: string | undefined },
): Map<string, number> {
  const base = `m${SEP}${clean(provider)}${SEP}${clean(model)}${SEP}`;
  const out = new Map<string, number>([
    [`${base}calls`, 1],
    [`${base}in`, call.inputTokens],
    [`${base}out`, call.outputTokens],
    [`${base}ms`, Math.round(call.latencyMs)],
  ]);
  if (call.errorCode !== undefined) {
    out.set(`${base}errors`, 1);
    out.set(`e${SEP}${clean(call.errorCode)}`, 1);
  }
  return out;
}

/** The counters of one tool call on `server`. */
export function toolCallCounters(server: string, ok: boolean): Map<string, number> {
  const base = `t${SEP}${clean(server)}${SEP}`;
  return new Map(ok ? [[`${base}calls`, 1]] : [[`${base}calls`, 1], [`${base}errors`, 1]]);
}

/** The counter of one refusal by `limit`. */
export function limitedCounters(limit: UsageLimitName): Map<string, number> {
  return new Map([[`l${SEP}${limit}`, 1]]);
}

/** Builds the view of a user's raw counters. */
export function toUserUsage(raw: RawUsage, limits: UsageLimits, resetsAt: number): UserUsage {
  const models = new Map<string, { provider: string; model: string; calls: number; errors: number; inputTokens: number; outputTokens: number; latencyMs: number }>();
  const tools = new Map<string, { server: string; calls: number; errors: number }>();
  const errorsByCode: Record<string, number> = {};
  const limited: Partial<Record<UsageLimitName, number>> = {};
  let lastCall: number | undefined;
  let lastLimited: number | undefined;
  for (const [field, value] of raw.counters) {
    const parts = field.split(SEP);
    switch (parts[0]) {
      case 'm': {
        const [, provider = '', model = '', what] = parts;
        const key = `${provider}${SEP}${model}`;
        let m = models.get(key);
        if (m === undefined) models.set(key, (m = { provider, model, calls: 0, errors: 0, inputTokens: 0, outputTokens: 0, latencyMs: 0 }));
        if (what === 'calls') m.calls += value;
        else if (what === 'errors') m.errors += value;
        else if (what === 'in') m.inputTokens += value;
        else if (what === 'out') m.outputTokens += value;
        else if (what === 'ms') m.latencyMs += value;
        break;
      }
      case 't': {
        const [, server = '', what] = parts;
        let t = tools.get(server);
        if (t === undefined) tools.set(server, (t = { server, calls: 0, errors: 0 }));
        if (what === 'calls') t.calls += value;
        else if (what === 'errors') t.errors += value;
        break;
      }
      case 'e':
        errorsByCode[parts[1] ?? ''] = value;
        break;
      case 'l':
        limited[parts[1] as UsageLimitName] = value;
        break;
      case LAST_CALL:
        lastCall = value;
        break;
      case LAST_LIMITED:
        lastLimited = value;
        break;
    }
  }
  const modelList: ModelUsage[] = [...models.values()].sort((a, b) => b.calls - a.calls || (a.model < b.model ? -1 : 1));
  const toolList: ToolServerUsage[] = [...tools.values()].sort((a, b) => b.calls - a.calls || (a.server < b.server ? -1 : 1));
  const sum = (k: 'calls' | 'errors' | 'inputTokens' | 'outputTokens' | 'latencyMs'): number => modelList.reduce((s, m) => s + m[k], 0);
  return {
    userUuid: raw.userUuid,
    calls: sum('calls'),
    errors: sum('errors'),
    inputTokens: sum('inputTokens'),
    outputTokens: sum('outputTokens'),
    latencyMs: sum('latencyMs'),
    toolCalls: toolList.reduce((s, t) => s + t.calls, 0),
    models: modelList,
    errorsByCode,
    tools: toolList,
    limited,
    lastLimitedAt: lastLimited === undefined ? null : new Date(lastLimited).toISOString(),
    lastCallAt: lastCall === undefined ? null : new Date(lastCall).toISOString(),
    period: { tokensUsed: raw.tokensUsed, tokensReserved: raw.tokensReserved, resetsAt: new Date(resetsAt).toISOString() },
    inFlight: raw.inFlight,
    limits,
  };
}

/** Start of the token period holding `now`. */
export function periodStart(now: number, periodMs: number): number {
  return Math.floor(now / periodMs) * periodMs;
}
