/**
 * How a store builds, shares and disposes the live resources of its
 * generations (`llmInstance`, `mcpClient`): each resource belongs to the
 * configuration it was built for, is carried over to a newer configuration
 * only when none of its `dependsOn` fields changed, and is disposed exactly
 * once, when its last holder lets it go.
 *
 * @internal
 * @module
 */
import { DEFAULT_DEPENDS_ON, RESOURCE_NAMES } from '../context/fields.js';
import type { ConfigField, ResourceName } from '../context/types.js';
import { sameValue } from '../context/values.js';
import { ConfigurationConflictError } from '../errors.js';
import { WARNING_TYPE } from '../warn.js';
import type { ContextEvents } from './events.js';
import { Generation, Resource } from './generation.js';
import { checkSpec, type ContextStoreOptions, type ResourceSpec } from './options.js';
import type { Scope } from './scope.js';

/** Resources a patch hands over: a value to attach, or `null` to drop one. */
export type HandedOver = Map<ResourceName, Resource | null>;

/** The resource side of a store. */
export class ResourcePolicy {
  readonly #specs: Record<ResourceName, ResourceSpec>;
  readonly #dependsOn: Record<ResourceName, readonly ConfigField[]>;
  readonly #events: ContextEvents;
  readonly #onDisposeError: NonNullable<ContextStoreOptions['onDisposeError']>;
  readonly #pending = new Set<Promise<void>>();

  constructor(options: ContextStoreOptions, events: ContextEvents) {
    this.#specs = {
      llmInstance: checkSpec('llmInstance', options.resources?.llmInstance),
      mcpClient: checkSpec('mcpClient', options.resources?.mcpClient),
    };
    this.#dependsOn = {
      llmInstance: this.#specs.llmInstance.dependsOn ?? DEFAULT_DEPENDS_ON.llmInstance,
      mcpClient: this.#specs.mcpClient.dependsOn ?? DEFAULT_DEPENDS_ON.mcpClient,
    };
    this.#events = events;
    this.#onDisposeError = options.onDisposeError ?? defaultDisposeError;
  }

  /** The fields a resource is built from. */
  dependsOn(name: ResourceName): readonly ConfigField[] {
    return this.#dependsOn[name];
  }

  /**
   * The live resource of a generation: the one set, or built lazily by the
   * resource's `create` factory from exactly that generation's configuration.
   */
  build(gen: Generation, name: ResourceName): unknown {
    const existing = gen.resources.get(name);
    if (existing !== undefined) return existing.value;
    const create = this.#specs[name].create;
    if (create === undefined) return null;
    const value = create(gen.config, gen.userUuid);
    if (value == null) return null;
    if (isThenable(value)) {
      // A rejected build is not cached: the next call tries again.
      value.then(undefined, () => {
        if (gen.resources.get(name)?.value === value) gen.resources.delete(name);
      });
    }
    gen.attach(new Resource(name, value));
    return value;
  }

  /**
   * The resources a patch hands over to `current`'s successor: `null` drops
   * one; handing back the client `current` already holds keeps it (one owner,
   * disposed once).
   */
  handOver(current: Generation, resources: ReadonlyMap<ResourceName, unknown>): HandedOver {
    const out: HandedOver = new Map();
    for (const [name, value] of resources) {
      const held = current.resources.get(name);
      const same = held !== undefined && !held.disposed && held.value === value;
      out.set(name, value === null ? null : same ? held.retain() : new Resource(name, value));
    }
    return out;
  }

  /** Shares with `gen` the resources of `old` whose `dependsOn` fields did not change; attaches `handed`. */
  carry(old: Generation, gen: Generation, changed: ReadonlySet<string>, handed: HandedOver): void {
    for (const name of RESOURCE_NAMES) {
      const set = handed.get(name);
      if (set !== undefined) {
        if (set !== null) gen.resources.set(name, set);
        continue;
      }
      const kept = old.resources.get(name);
      if (kept !== undefined && !kept.disposed && !this.#dependsOn[name].some((field) => changed.has(field))) {
        gen.resources.set(name, kept.retain());
      }
    }
  }

  /**
   * A client handed over from inside a request was built for that request's
   * snapshot. If another request has since changed a field the client depends
   * on (and this write does not set it), attaching the client would pair it
   * with a configuration it was not built for: refuse the write instead.
   * Shared by every store's write path.
   */
  checkBase(current: Generation, fields: ReadonlyMap<string, unknown>, resources: ReadonlyMap<ResourceName, unknown>, scope: Scope): void {
    const base = scope.gen.config as unknown as Record<string, unknown>;
    const now = current.config as unknown as Record<string, unknown>;
    if (!scope.open || scope.userUuid !== current.userUuid || base === now) return;
    for (const [name, value] of resources) {
      if (value === null) continue;
      for (const field of this.#dependsOn[name]) {
        if (!fields.has(field) && !sameValue(base[field], now[field])) {
          throw new ConfigurationConflictError(
            `${name} was built for this request's configuration, but another request changed "${field}" since; ` +
              `nothing was applied. Build it from the current configuration and set it again, or pass "${field}" ` +
              'in the same configureUser() call.',
          );
        }
      }
    }
  }

  /** Disposes a released resource (in the background; `settled()` waits for it). */
  dispose(name: ResourceName, value: unknown, userUuid: string): void {
    const disposeFn = this.#specs[name].dispose;
    if (disposeFn === null) return;
    const run = async (): Promise<void> => {
      const resolved: unknown = await value;
      if (disposeFn !== undefined) await disposeFn(resolved, userUuid);
      else await defaultDispose(resolved);
    };
    const done = run().then(
      () => {
        this.#pending.delete(done);
        this.#events.emit('resourceDisposed', { userUuid, resource: name, ok: true });
      },
      (error: unknown) => {
        this.#pending.delete(done);
        this.#events.emit('resourceDisposed', { userUuid, resource: name, ok: false });
        this.#onDisposeError(error, { resource: name, userUuid });
      },
    );
    this.#pending.add(done);
  }

  /** Waits until every dispose started so far (and those they start) has settled. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }
}

async function defaultDispose(value: unknown): Promise<void> {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
  const v = value as Record<string | symbol, unknown>;
  for (const key of [Symbol.asyncDispose, 'close', 'dispose', Symbol.dispose] as const) {
    const fn = v[key];
    if (typeof fn === 'function') {
      await (fn as () => unknown).call(value);
      return;
    }
  }
}

function defaultDisposeError(error: unknown, info: { resource: ResourceName; userUuid: string }): void {
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(`Disposing ${info.resource} of user ${info.userUuid} failed: ${message}`, WARNING_TYPE, 'KUC_DISPOSE_FAILED');
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
