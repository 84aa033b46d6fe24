/**
 * Prometheus metrics of a usage meter (koa-user-context/usage), with
 * prom-client. Aggregated by provider, model and outcome: a user id is never
 * a label (bounded cardinality; per-user usage is in the admin API).
 *
 * ```ts
 * import { registerUsageMetrics } from 'koa-user-context/metrics';
 * registerUsageMetrics(usage, { registry });
 * ```
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry, register as globalRegistry } from 'prom-client';
import type { UsageLimitName } from '../errors.js';
import type { UsageMeter } from '../usage/meter.js';

/** Options of {@link registerUsageMetrics}. */
export interface UsageMetricsOptions {
  /**
   * Registry the metrics are registered in.
   * @default prom-client's global `register`
   */
  registry?: Registry;
  /**
   * Prefix of every metric name.
   * @default 'koa_user_context_'
   */
  prefix?: string;
}

const LIMITS: readonly UsageLimitName[] = ['tokens', 'requests', 'concurrent', 'toolCalls'];

/**
 * Registers:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `llm_calls_total` | counter | `provider`, `model`, `outcome` (`ok`, `error`, `aborted`) |
 * | `llm_tokens_total` | counter | `provider`, `model`, `direction` (`input`, `output`) |
 * | `llm_call_duration_seconds` | histogram | `provider`, `model` |
 * | `usage_limited_total` | counter (calls refused by a limit) | `limit` |
 * | `tool_calls_total` | counter | `server`, `outcome` (`ok`, `error`) |
 * | `usage_store_errors_total` | counter | `phase` (`admit`, `book`) |
 * | `usage_bookings_pending` | gauge (bookings waiting for the store) | |
 *
 * Returns the function that removes them and stops listening.
 */
export function registerUsageMetrics(meter: UsageMeter, options: UsageMetricsOptions = {}): () => void {
  if (meter === null || typeof meter !== 'object' || typeof meter.on !== 'function') {
    throw new TypeError('registerUsageMetrics(meter): meter must be a UsageMeter (createUsageMeter() from koa-user-context/usage)');
  }
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  for (const key of Object.keys(options)) {
    if (key !== 'registry' && key !== 'prefix') throw new TypeError(`registerUsageMetrics: unknown option "${key}"; known: registry, prefix`);
  }
  const { registry = globalRegistry, prefix = 'koa_user_context_' } = options;
  if (typeof prefix !== 'string' || (prefix !== '' && !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix))) {
    throw new TypeError(`options.prefix must be a metric name prefix (letters, digits, _ and :), got ${JSON.stringify(prefix)}`);
  }
  const registers = [registry];
  const calls = new Counter({ name: `${prefix}llm_calls_total`, help: 'LLM calls that reached the provider, by outcome.', labelNames: ['provider', 'model', 'outcome'] as const, registers });
  const tokens = new Counter({ name: `${prefix}llm_tokens_total`, help: 'Tokens the providers reported, by direction.', labelNames: ['provider', 'model', 'direction'] as const, registers });
  const duration = new Histogram({
    name: `${prefix}llm_call_duration_seconds`,
    help: 'Duration of LLM calls, until the last byte of a stream.',
    labelNames: ['provider', 'model'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const limited = new Counter({ name: `${prefix}usage_limited_total`, help: 'LLM calls refused by a per-user limit (429 usage_limit_exceeded).', labelNames: ['limit'] as const, registers });
  const tools = new Counter({ name: `${prefix}tool_calls_total`, help: 'Tool calls run on MCP servers, by outcome.', labelNames: ['server', 'outcome'] as const, registers });
  const storeErrors = new Counter({ name: `${prefix}usage_store_errors_total`, help: 'Usage store (Redis) failures, by phase.', labelNames: ['phase'] as const, registers });
  new Gauge({
    name: `${prefix}usage_bookings_pending`,
    help: 'Usage bookings waiting for the usage store to come back.',
    registers,
    collect() {
      this.set(meter.pending);
    },
  });
  for (const limit of LIMITS) limited.inc({ limit }, 0);
  for (const phase of ['admit', 'book']) storeErrors.inc({ phase }, 0);
  const off = meter.on((event) => {
    switch (event.type) {
      case 'call': {
        const labels = { provider: event.provider, model: event.model };
        calls.inc({ ...labels, outcome: event.outcome });
        tokens.inc({ ...labels, direction: 'input' }, event.inputTokens);
        tokens.inc({ ...labels, direction: 'output' }, event.outputTokens);
        duration.observe(labels, event.latencyMs / 1000);
        break;
      }
      case 'limited':
        limited.inc({ limit: event.limit });
        break;
      case 'tool':
        tools.inc({ server: event.server, outcome: event.ok ? 'ok' : 'error' });
        break;
      case 'storeError':
        storeErrors.inc({ phase: event.phase });
        break;
    }
  });
  const names = [calls, tokens, duration, limited, tools, storeErrors].map((m) => (m as unknown as { name: string }).name).concat(`${prefix}usage_bookings_pending`);
  return () => {
    off();
    for (const name of names) registry.removeSingleMetric(name);
  };
}
