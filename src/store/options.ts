/**
 * Options of the in-memory {@link ContextStore}: their types, defaults and
 * validation (read once, in the constructor).
 *
 * @module
 */
import type { LRUCache } from 'lru-cache';
import { BUILTIN_DEFAULTS } from '../context/fields.js';
import type { ConfigField, LlmInstance, McpClient, ResourceName, UserConfig, UserContextFields } from '../context/types.js';
import { splitPatch } from '../context/values.js';
import { rejectUnknownOptions } from '../options.js';
import { warnOnce } from '../warn.js';
import type { UserIdPolicy } from '../auth/user-id.js';
import { ContextEvents } from './events.js';
import type { Generation } from './generation.js';
import { Persistence, type ContextPersistence } from './persistence.js';
import type { ContextStore } from './store.js';

/** How helpers behave outside any user scope. */
export type ContextMode = 'single-user' | 'multi-user';

/** Why an entry left the store. */
export type EvictionReason = 'expired' | 'evicted' | 'manual' | 'inactive' | 'closed' | 'unsaved';

/** How a live resource is built and disposed. */
export interface ResourceSpec<T = unknown> {
  /**
   * Configuration fields the resource is built from. Committing a change to
   * any of them drops the resource from the new configuration (and disposes
   * it once no request uses the old one).
   *
   * Extend the default rather than restate it:
   * `[...DEFAULT_DEPENDS_ON.llmInstance, 'tenant']`.
   *
   * @default DEFAULT_DEPENDS_ON[name]: the built-in fields whose `usedBy` is this resource
   */
  dependsOn?: readonly ConfigField[];
  /**
   * Builds the resource lazily from the configuration, on the first
   * `getUserLlmInstance()` / `getUserMcpClient()` of that configuration.
   * May return a Promise; the Promise itself is cached (single flight).
   *
   * @default undefined (the getter returns `null` until a value is set)
   */
  create?: (config: UserConfig, userUuid: string) => T | null;
  /**
   * Disposes the resource. `null` means the store never disposes it (use it
   * for clients shared with something else).
   *
   * @default calls `value[Symbol.asyncDispose]()`, `value.close()` or
   * `value.dispose()`, whichever exists first
   */
  dispose?: DisposeFn<T> | null;
}

/**
 * `dispose` is checked bivariantly (method style), so a spec built for one
 * client type (e.g. `ResourceSpec<Promise<UserMcpConnection>>`) still fits
 * where no client type is registered (`ResourceSpec<unknown>`), while `create`
 * stays checked against the registered type.
 */
type DisposeFn<T> = { bivariance(value: Awaited<T>, userUuid: string): unknown }['bivariance'];

/** Options of {@link ContextStore}. */
export interface ContextStoreOptions {
  /**
   * Most user contexts kept; the least recently used goes first.
   * @default 10_000
   */
  max?: number;
  /**
   * Sliding inactivity time-to-live in milliseconds: a context not used for
   * this long is evicted and its resources disposed. `0` disables it.
   * @default 86_400_000 (24 h)
   */
  ttl?: number;
  /**
   * How often (ms) expired contexts are swept, so their resources are
   * disposed even if nobody touches them again. `0` disables the sweep.
   * @default 60_000
   */
  sweepInterval?: number;
  /**
   * `multi-user`: a helper called outside any user scope throws
   * `UserContextMissingError`. `single-user`: it uses one process-wide
   * context (the legacy `APP_CONFIG` behaviour).
   * @default process.env.KOA_USER_CONTEXT_MODE, else 'multi-user'
   */
  mode?: ContextMode;
  /**
   * In `multi-user` mode, `'global'` lets helpers outside a scope fall back
   * to the process-wide context instead of throwing.
   * @default 'throw'
   */
  outsideScope?: 'throw' | 'global';
  /**
   * Shape of a valid user id.
   * @default UUIDs of any version, normalised to lower case
   */
  userId?: UserIdPolicy;
  /**
   * Initial values of the fields of a new context (app fields included).
   * Copied and frozen: users never share mutable state.
   * @default all built-in fields null, serverConfigs {}
   */
  defaults?: Partial<UserContextFields>;
  /**
   * How `llmInstance` and `mcpClient` are built and disposed.
   * @default {} (no factories, default dispose)
   */
  resources?: { llmInstance?: ResourceSpec<LlmInstance>; mcpClient?: ResourceSpec<McpClient> };
  /**
   * Also copy every per-user write into the process-wide (legacy
   * `APP_CONFIG`) context. This brings back last-writer-wins for code that
   * reads the globals; it exists for migrations only and warns once.
   * @default false
   */
  mirrorToLegacyGlobals?: boolean;
  /**
   * Called when a resource's dispose throws or rejects.
   * @default emits a process warning with code `KUC_DISPOSE_FAILED`
   */
  onDisposeError?: (error: unknown, info: { resource: ResourceName; userUuid: string }) => void;
  /**
   * Called when a context leaves the store.
   * @default undefined
   */
  onEvict?: (userUuid: string, reason: EvictionReason) => void;
  /**
   * Observer of the store (and of the middleware and helpers using it):
   * context loads, evictions, token cache hits/misses, rejected tokens,
   * resource disposals, missing-context errors. Pass one emitter to several
   * stores to watch them together. Read it back as `store.events`.
   * @default a new `ContextEvents` with no listeners
   */
  events?: ContextEvents;
  /**
   * The app's database behind the store: a loader for users not cached
   * (a new process, an evicted or expired user) and hooks awaited before a
   * write or a delete is acknowledged. See docs/persistence.md.
   * @default undefined (contexts live in the store only: an evicted user starts from the defaults)
   */
  persistence?: ContextPersistence;
}

/** One user's slot in the store. */
export interface UserEntry {
  readonly userUuid: string;
  /** The current (newest committed) generation. */
  current: Generation;
  /** `Date.now()` of the last request or explicit access. */
  lastAccess: number;
  /** Scopes open on this entry. */
  inFlight: number;
}

/** Every option of {@link ContextStoreOptions}, for the unknown-option check. */
export const STORE_OPTIONS: readonly (keyof ContextStoreOptions)[] = Object.freeze(
  Object.keys({
    max: 1, ttl: 1, sweepInterval: 1, mode: 1, outsideScope: 1, userId: 1, defaults: 1, resources: 1,
    mirrorToLegacyGlobals: 1, onDisposeError: 1, onEvict: 1, events: 1, persistence: 1,
  } satisfies Record<keyof ContextStoreOptions, 1>) as (keyof ContextStoreOptions)[],
);

/** Refuses options the store does not know (subclasses pass their own list too). */
export function checkStoreOptions(options: object, extra: readonly string[] = [], where = 'new ContextStore(options)'): void {
  rejectUnknownOptions(options, [...STORE_OPTIONS, ...extra], where);
}

const RESOURCE_KEYS = ['create', 'dispose', 'dependsOn'] as const;

export function modeFromEnv(): ContextMode {
  const value = process.env['KOA_USER_CONTEXT_MODE'];
  if (value === undefined || value === '') return 'multi-user';
  if (value === 'single-user' || value === 'multi-user') return value;
  throw new TypeError(`KOA_USER_CONTEXT_MODE must be 'single-user' or 'multi-user', got '${value}'`);
}

export function buildDefaults(defaults: Partial<UserContextFields> | undefined): UserConfig {
  if (defaults === undefined) return BUILTIN_DEFAULTS;
  if (defaults === null || typeof defaults !== 'object') throw new TypeError('options.defaults must be an object');
  const { fields, resources } = splitPatch(defaults);
  if (resources.size > 0) {
    throw new TypeError('options.defaults holds configuration fields only; use options.resources for live clients');
  }
  const config: Record<string, unknown> = { ...BUILTIN_DEFAULTS };
  for (const [key, value] of fields) config[key] = value;
  return Object.freeze(config) as UserConfig;
}

export function checkSpec(name: ResourceName, spec: ResourceSpec | undefined): ResourceSpec {
  if (spec === undefined) return {};
  if (spec === null || typeof spec !== 'object') throw new TypeError(`options.resources.${name} must be an object`);
  rejectUnknownOptions(spec, RESOURCE_KEYS, `options.resources.${name}`);
  if (spec.create !== undefined && typeof spec.create !== 'function') {
    throw new TypeError(`options.resources.${name}.create must be a function (config, userUuid) => client`);
  }
  if (spec.dispose !== undefined && spec.dispose !== null && typeof spec.dispose !== 'function') {
    throw new TypeError(`options.resources.${name}.dispose must be a function or null`);
  }
  if (spec.dependsOn !== undefined && !Array.isArray(spec.dependsOn)) {
    throw new TypeError(`options.resources.${name}.dependsOn must be an array of field names`);
  }
  return spec;
}

/** The validated settings of a store. */
export interface StoreSettings {
  readonly max: number;
  readonly ttl: number;
  readonly sweepInterval: number;
  readonly mode: ContextMode;
  readonly outsideScope: 'throw' | 'global';
  readonly mirror: boolean;
  readonly events: ContextEvents;
  readonly persistence: Persistence | undefined;
}

/**
 * Validates a store's options once (a `TypeError` naming the option), with
 * the unknown-option check; `cls` is the class being constructed, whose
 * static `extraOptions` (a subclass's own options) are accepted too.
 */
export function resolveStoreOptions(options: ContextStoreOptions, cls: { name: string; extraOptions?: readonly string[] }): StoreSettings {
  checkStoreOptions(options, cls.extraOptions ?? [], `new ${cls.name}(options)`);
  const {
    max = 10_000,
    ttl = 86_400_000,
    sweepInterval = 60_000,
    mode = modeFromEnv(),
    outsideScope = 'throw',
    mirrorToLegacyGlobals = false,
  } = options;
  if (!Number.isInteger(max) || max < 1) throw new TypeError('options.max must be a positive integer');
  if (!Number.isFinite(ttl) || ttl < 0) throw new TypeError('options.ttl must be a number of milliseconds >= 0');
  if (!Number.isFinite(sweepInterval) || sweepInterval < 0) {
    throw new TypeError('options.sweepInterval must be a number of milliseconds >= 0');
  }
  if (mode !== 'single-user' && mode !== 'multi-user') {
    throw new TypeError(`options.mode must be 'single-user' or 'multi-user', got ${String(mode)}`);
  }
  if (outsideScope !== 'throw' && outsideScope !== 'global') {
    throw new TypeError(`options.outsideScope must be 'throw' or 'global', got ${String(outsideScope)}`);
  }
  if (options.events !== undefined && !(options.events instanceof ContextEvents)) {
    throw new TypeError('options.events must be a ContextEvents instance');
  }
  if (mirrorToLegacyGlobals === true) {
    warnOnce(
      'KUC_LEGACY_MIRROR',
      'mirrorToLegacyGlobals is on: every per-user write is also copied into the process-wide APP_CONFIG, ' +
        'so code that still reads the globals sees the last writer of any user. Migrate those call sites to ' +
        'getUserProvider()/getUserModel()… and turn the option off.',
    );
  }
  const persistence = options.persistence === undefined ? undefined : new Persistence(options.persistence);
  return {
    max, ttl, sweepInterval, mode, outsideScope, mirror: mirrorToLegacyGlobals === true, events: options.events ?? new ContextEvents(), persistence,
  };
}
