/**
 * `koa-user-context/usage`: per-user usage and limits. A meter records every
 * LLM call of a user's client (tokens from the SDK's own report, errors by
 * code, latency, per provider and model) and tool calls per MCP server, and
 * refuses calls past the operator's limits (tokens per period, requests per
 * minute, concurrent calls, tool calls per loop) with
 * `UsageLimitExceededError` (429). In memory for one instance, on Redis for
 * several. `rate-limiter-flexible` is an optional peer dependency, loaded
 * only by this entry; the root entry never loads it.
 *
 * @module
 */
export {
  createUsageMeter,
  checkLimits,
  errorCodeOf,
  UsageMeter,
  type CallEstimateInput,
  type CallTarget,
  type ReportedUsage,
  type UsageEvent,
  type UsageMeterOptions,
  type UsageTicket,
} from './usage/meter.js';
export { MemoryUsageBackend, type MemoryUsageBackendOptions } from './usage/memory.js';
export { RedisUsageBackend, type RedisUsageBackendOptions } from './usage/redis.js';
export { getUserUsage, getDefaultUsageMeter, setDefaultUsageMeter } from './usage/current.js';
export type {
  Admission,
  BeginRequest,
  Booking,
  ModelUsage,
  RawUsage,
  ResolvedLimits,
  ToolServerUsage,
  UsageBackend,
  UsageLimits,
  UserUsage,
} from './usage/types.js';
export { UsageLimitExceededError, UsageStoreUnavailableError, type UsageLimitName } from './errors.js';
