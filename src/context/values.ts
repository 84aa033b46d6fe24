/**
 * The shape of a user's runtime context: its configuration fields (plain,
 * serialisable data, frozen once committed) and its live resources (an LLM
 * client, an MCP client) which belong to the configuration that built them.
 *
 * @module
 */
import { InvalidContextValueError } from '../errors.js';

/** Deployment details of an Azure OpenAI model. */
export interface AzureDeploymentDetails {
  endpoint?: string;
  deploymentName?: string;
  apiVersion?: string;
  /** Secret: redacted by {@link redactContext}. */
  apiKey?: string;
  readonly [key: string]: unknown;
}

/** Connection details of a Friendli.ai endpoint. */
export interface FriendliDetails {
  endpointUrl?: string;
  modelId?: string;
  /** Secret: redacted by {@link redactContext}. */
  token?: string;
  readonly [key: string]: unknown;
}

/**
 * The configuration fields of a user's context. Every field is plain data.
 *
 * Apps add typed fields of their own by declaration merging:
 *
 * ```ts
 * declare module 'koa-user-context' {
 *   interface UserContextFields { tenant: string | null }
 * }
 * ```
 * and give them a default with the store's `defaults` option.
 */
export interface UserContextFields {
  provider: string | null;
  model: string | null;
  mcpServerName: string | null;
  mcpServerId: string | null;
  awsRegion: string | null;
  azureDeploymentDetails: Readonly<AzureDeploymentDetails> | null;
  friendliDetails: Readonly<FriendliDetails> | null;
  modelProviderInProfile: string | null;
  serverConfigs: Readonly<Record<string, unknown>>;
}

/**
 * Register the types of the live resources by declaration merging:
 *
 * ```ts
 * declare module 'koa-user-context' {
 *   interface UserContextTypes { llm: MyLlmClient; mcp: Client }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface UserContextTypes {}

/** The registered LLM client type, `unknown` until registered. */
export type LlmInstance = UserContextTypes extends { llm: infer T } ? T : unknown;
/** The registered MCP client type, `unknown` until registered. */
export type McpClient = UserContextTypes extends { mcp: infer T } ? T : unknown;

/** A committed configuration: frozen, never shared mutable state. */
export type UserConfig = Readonly<UserContextFields>;

/** A field name of the configuration. */
export type ConfigField = keyof UserContextFields & string;

/** The live resources a context holds. */
export interface UserResourceValues {
  llmInstance: LlmInstance | null;
  mcpClient: McpClient | null;
}

/** Name of a live resource. */
export type ResourceName = keyof UserResourceValues;

/** What `configureUser()` accepts: any subset of fields and resources. */
export type ContextPatch = Partial<UserContextFields> & Partial<UserResourceValues>;

/**
 * A read-only view of one user's context, as returned by
 * `getUserRuntimeContext()`.
 */
export type UserRuntimeContext = UserConfig &
  UserResourceValues & {
    readonly userUuid: string;
    /** Time of the user's last request or explicit access. */
    readonly lastAccess: Date;
    /** Increases by one on every committed change of this user's context. */
    readonly version: number;
  };

/** The built-in fields and their defaults. */
export const BUILTIN_DEFAULTS: UserConfig = Object.freeze({
  provider: null,
  model: null,
  mcpServerName: null,
  mcpServerId: null,
  awsRegion: null,
  azureDeploymentDetails: null,
  friendliDetails: null,
  modelProviderInProfile: null,
  serverConfigs: Object.freeze({}),
});

export const RESOURCE_NAMES: readonly ResourceName[] = Object.freeze(['llmInstance', 'mcpClient']);

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const RESERVED_KEYS = new Set(['userUuid', 'lastAccess', 'version']);

/**
 * Deep-freezes a structured clone of a plain-data value, so a committed
 * configuration can never be changed behind the store's back nor share
 * mutable state with the caller or with another user.
 */
export function freezeValue(field: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
      throw new InvalidContextValueError(
        `Field "${field}" must be plain data (string, number, boolean, null, array or plain object), got a ${typeof value}. ` +
          'Live objects belong in llmInstance / mcpClient or a resource factory.',
      );
    }
    return value;
  }
  let copy: unknown;
  try {
    copy = structuredClone(value);
  } catch (cause) {
    throw new InvalidContextValueError(
      `Field "${field}" must be plain data that structuredClone() can copy; it holds a function or a live object.`,
      { cause },
    );
  }
  return deepFreeze(copy);
}

function deepFreeze(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Splits a patch into frozen config fields and resources; rejects unsafe keys. */
export function splitPatch(patch: unknown): {
  fields: Map<string, unknown>;
  resources: Map<ResourceName, unknown>;
} {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new InvalidContextValueError(
      'configureUser() takes a plain object such as { provider: "Google", model: "gemini-2.5-flash" }.',
    );
  }
  const fields = new Map<string, unknown>();
  const resources = new Map<ResourceName, unknown>();
  for (const key of Object.keys(patch)) {
    const value = (patch as Record<string, unknown>)[key];
    if (FORBIDDEN_KEYS.has(key) || RESERVED_KEYS.has(key)) {
      throw new InvalidContextValueError(`"${key}" cannot be set on a user context.`);
    }
    if (value === undefined) continue;
    if (key === 'llmInstance' || key === 'mcpClient') resources.set(key, value);
    else fields.set(key, freezeValue(key, value));
  }
  return { fields, resources };
}

/** Structural equality for frozen plain data. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

const SECRET_KEY = /(api[-_]?key|token|secret|password|credential|authorization)/i;

/**
 * Returns a copy of a context (or any plain data) with secret-looking keys
 * (`apiKey`, `token`, `secret`, `password`, …) replaced by `"[redacted]"` and
 * live resources reduced to a flag saying whether they exist.
 * `options.secretKeys` names further keys (at any depth) to redact.
 */
export function redactContext(
  context: UserRuntimeContext,
  options: { secretKeys?: readonly string[] } = {},
): Record<string, unknown> {
  const extra = options.secretKeys === undefined || options.secretKeys.length === 0 ? undefined : new Set(options.secretKeys);
  const isSecret = extra === undefined ? (key: string) => SECRET_KEY.test(key) : (key: string) => extra.has(key) || SECRET_KEY.test(key);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (key === 'llmInstance' || key === 'mcpClient') out[key] = value != null ? '[live]' : null;
    else if (key === 'lastAccess') out[key] = (value as Date).toISOString();
    else out[key] = redactValue(key, value, isSecret);
  }
  return out;
}

function redactValue(key: string, value: unknown, isSecret: (key: string) => boolean): unknown {
  if (value != null && isSecret(key)) return '[redacted]';
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue('', v, isSecret));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactValue(k, v, isSecret);
  return out;
}
