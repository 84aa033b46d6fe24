/**
 * Profile overrides: run one query with another provider/model/MCP server
 * without touching anything global or the user's stored context.
 *
 * `runWithProfile(profile, fn)` opens a scope nested in the current one whose
 * generation is *derived*: the current configuration plus the profile's
 * fields, never committed. Every helper inside `fn` (and the legacy
 * `APP_CONFIG` accessors) reads the derived configuration; the LLM/MCP
 * clients for it are built lazily by the store's factories and disposed once
 * no scope uses them, exactly like a committed configuration's. Resources
 * the profile does not affect (e.g. the MCP client when only the model is
 * overridden) are shared with the user's configuration. Concurrent requests
 * each get their own nested scope, so overrides cannot leak between them;
 * concurrent overrides of one user with the same profile share its clients.
 *
 * ```ts
 * const answer = await runWithProfile({ tag: '@fast', provider: 'Anthropic', model: 'claude-3-5-haiku' },
 *   () => agent.run(prompt));
 * ```
 *
 * @module
 */
import { isKind, stamp } from '../brand.js';
import { als } from '../store/als.js';
import type { UserContextFields } from '../context/types.js';
import { splitPatch } from '../context/values.js';
import { InvalidProfileError, UserContextError, UserContextMissingError } from '../errors.js';
import type { Generation } from '../store/generation.js';
import { runInScope } from './run.js';
import { Scope } from '../store/scope.js';
import type { ContextStore } from '../store/store.js';

/** A profile: configuration fields to override for one query, and an optional tag. */
export type Profile = Partial<UserContextFields> & {
  /**
   * Label of the profile (e.g. `"@fast"`), reported by `currentProfileTag()`.
   * @default undefined
   */
  tag?: string;
};

/** Longest profile tag accepted. */
const MAX_TAG_LENGTH = 200;

/** Derived generations alive now, per base generation and profile, so concurrent overrides share clients. */
const derivedCache = new WeakMap<Generation, Map<string, Generation>>();

/** A scope nested in another one, reading a derived (never committed) configuration. */
class ProfileScope extends Scope {
  /** Brand: a profile scope opened by another copy of the package is recognised too. @internal */
  static readonly kind: string = 'ProfileScope';
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isKind(value, this.kind);
  }

  readonly profileTag: string | undefined;
  readonly #fields: ReadonlyMap<string, unknown>;
  readonly #key: string;

  constructor(parent: Scope, fields: ReadonlyMap<string, unknown>, key: string, tag: string | undefined, onClose: (scope: Scope) => void) {
    const gen = derivedFor(parent.store, parent.gen, fields, key);
    super(parent.store, parent.entry, parent.claims, onClose, gen, parent);
    stamp(this, new.target);
    gen.retire();
    this.profileTag = tag;
    this.#fields = fields;
    this.#key = key;
  }

  /**
   * A write inside the override is committed to the user's context (the
   * enclosing scope sees it, as its own write); the override stays on top.
   */
  override moveTo(committed: Generation): void {
    const parent = this.parent!;
    if (parent.open) parent.moveTo(committed);
    if (!this.open) return;
    const derived = derivedFor(this.store, committed, this.#fields, this.#key);
    if (derived === this.gen) return;
    const old = this.gen;
    derived.lease();
    derived.retire();
    this.gen = derived;
    old.unlease();
  }
}

function derivedFor(store: ContextStore, base: Generation, fields: ReadonlyMap<string, unknown>, key: string): Generation {
  let byKey = derivedCache.get(base);
  const alive = byKey?.get(key);
  // A derived generation is released once its last lease ends: reuse it only while leased.
  if (alive !== undefined && alive.leases > 0) return alive;
  const gen = store.derive(base, fields);
  if (byKey === undefined) derivedCache.set(base, (byKey = new Map()));
  byKey.set(key, gen);
  return gen;
}

function parseProfile(profile: unknown): { fields: Map<string, unknown>; key: string; tag: string | undefined } {
  if (profile === null || typeof profile !== 'object' || Array.isArray(profile)) {
    throw new InvalidProfileError(
      'runWithProfile(profile, fn): profile must be an object such as { tag: "@fast", provider: "Anthropic", model: "claude-3-5-haiku" }.',
    );
  }
  const { tag, ...rest } = profile as Record<string, unknown>;
  if (tag !== undefined && (typeof tag !== 'string' || tag === '' || tag.length > MAX_TAG_LENGTH)) {
    throw new InvalidProfileError(`A profile's tag must be a non-empty string of at most ${MAX_TAG_LENGTH} characters.`);
  }
  let split;
  try {
    split = splitPatch(rest);
  } catch (cause) {
    throw new InvalidProfileError(cause instanceof UserContextError ? cause.message : String(cause), { cause });
  }
  if (split.resources.size > 0) {
    throw new InvalidProfileError(
      'A profile holds configuration fields only (provider, model, mcpServerName, …); ' +
        'its LLM and MCP clients are built by the store\'s resource factories.',
    );
  }
  const key = JSON.stringify([...split.fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { fields: split.fields, key, tag };
}

/**
 * Runs `fn` with the profile's provider/model/MCP server/… for this query
 * only, as a nested scope of the current user scope. Returns what `fn`
 * returns; the override ends when `fn` returns or its promise settles.
 * Nothing global and nothing in the user's stored context changes. Writes
 * made inside `fn` (`configureUser()`, …) are committed to the user's
 * context as usual, and the override keeps applying on top of them.
 *
 * Throws `UserContextMissingError` outside a user scope and
 * `InvalidProfileError` for a malformed profile.
 */
export function runWithProfile<R>(profile: Profile, fn: () => R): R {
  if (typeof fn !== 'function') throw new TypeError('runWithProfile(profile, fn): fn must be a function');
  const parent = als.getStore();
  if (parent === undefined) {
    throw new UserContextMissingError(
      'runWithProfile() was called outside a user scope: there is no user whose configuration to override. ' +
        'Call it while handling a request that passed the userContext() middleware, or inside runAsUser(userUuid, fn).',
    );
  }
  const { fields, key, tag } = parseProfile(profile);
  const scope = parent.store.openNestedScope(parent, (onClose) => new ProfileScope(parent, fields, key, tag, onClose));
  return runInScope(scope, fn, true);
}

/** Tag of the innermost profile override in effect, or `undefined`. */
export function currentProfileTag(): string | undefined {
  for (let scope = als.getStore(); scope !== undefined; scope = scope.parent) {
    if (scope instanceof ProfileScope && scope.profileTag !== undefined) return scope.profileTag;
  }
  return undefined;
}

/** Whether the current scope runs under a profile override. */
export function isProfileOverride(): boolean {
  return als.getStore() instanceof ProfileScope;
}
