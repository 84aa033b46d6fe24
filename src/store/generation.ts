/**
 * Resource lifetime. A {@link Generation} is one committed configuration of
 * one user, together with the live resources built for exactly that
 * configuration. Requests lease the generation they start on; a generation
 * replaced by a newer one (or evicted) is *retired*, and its resources are
 * released once the last lease ends. A resource that the next generation
 * still matches (its `dependsOn` fields did not change) is shared with it, so
 * it is counted by holders and disposed exactly once, when the last holder
 * lets it go.
 *
 * @internal
 * @module
 */
import type { ResourceName, UserConfig, UserRuntimeContext } from '../context/types.js';

/** The store a generation belongs to: builds and disposes its resources. */
export interface GenerationOwner {
  dispose(name: ResourceName, value: unknown, userUuid: string): void;
  resource(gen: Generation, name: ResourceName): unknown;
  view(gen: Generation): unknown;
}

/** A live resource shared by one or more generations. */
export class Resource {
  readonly name: ResourceName;
  readonly value: unknown;
  #holders = 1;
  #disposed = false;

  constructor(name: ResourceName, value: unknown) {
    this.name = name;
    this.value = value;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  retain(): this {
    this.#holders++;
    return this;
  }

  release(owner: GenerationOwner, userUuid: string): void {
    if (--this.#holders > 0 || this.#disposed) return;
    this.#disposed = true;
    owner.dispose(this.name, this.value, userUuid);
  }
}

/** One committed configuration of one user, and its resources. */
export class Generation {
  readonly userUuid: string;
  readonly config: UserConfig;
  readonly version: number;
  readonly resources = new Map<ResourceName, Resource>();
  /** Scopes (requests, `runAsUser`) currently using this generation. */
  leases = 0;
  #retired = false;
  #released = false;
  /** The store this generation belongs to. */
  readonly owner: GenerationOwner;

  constructor(
    userUuid: string,
    config: UserConfig,
    version: number,
    owner: GenerationOwner,
  ) {
    this.userUuid = userUuid;
    this.config = config;
    this.version = version;
    this.owner = owner;
  }

  get retired(): boolean {
    return this.#retired;
  }

  lease(): void {
    this.leases++;
  }

  unlease(): void {
    if (--this.leases === 0 && this.#retired) this.#release();
  }

  /** No longer the user's current configuration: release once unleased. */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    if (this.leases === 0) this.#release();
  }

  /** Attaches a resource built for this configuration. */
  attach(resource: Resource): void {
    const old = this.resources.get(resource.name);
    this.resources.set(resource.name, resource);
    old?.release(this.owner, this.userUuid);
    if (this.#released) resource.release(this.owner, this.userUuid);
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const resource of this.resources.values()) resource.release(this.owner, this.userUuid);
  }
}

/** A frozen, read-only view of a generation (resources as they are; nothing is built). */
export function viewOf(gen: Generation, lastAccess: number): UserRuntimeContext {
  return Object.freeze({
    ...gen.config,
    llmInstance: (gen.resources.get('llmInstance')?.value ?? null) as UserRuntimeContext['llmInstance'],
    mcpClient: (gen.resources.get('mcpClient')?.value ?? null) as UserRuntimeContext['mcpClient'],
    userUuid: gen.userUuid,
    lastAccess: new Date(lastAccess),
    version: gen.version,
  });
}
