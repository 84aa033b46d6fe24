/**
 * Chat sessions of the example app, in memory. A session belongs to the user
 * who created it and captures that user's configuration at creation (the seed
 * design's "context inheritance"): its queries run on that configuration even
 * if the user reconfigures later. Every query records the provider/model that
 * actually ran it and the profile tag in effect, as read from the context that
 * ran it: never from a global.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Profile, UserConfig } from '../src/index.js';

/** The configuration fields a session captures. */
const CAPTURED = [
  'provider',
  'model',
  'mcpServerName',
  'mcpServerId',
  'awsRegion',
  'azureDeploymentDetails',
  'friendliDetails',
  'modelProviderInProfile',
  'serverConfigs',
] as const;

export class Session {
  readonly id = randomUUID();
  readonly createdAt = new Date();
  /** The owner's configuration when the session was created, as a profile for `runWithProfile`. */
  readonly profile: Profile;
  readonly #models = new Set<string>();
  readonly #tags = new Set<string>();
  queries = 0;

  constructor(readonly owner: string, config: UserConfig) {
    const profile: Record<string, unknown> = {};
    for (const field of CAPTURED) profile[field] = config[field];
    this.profile = Object.freeze(profile) as Profile;
  }

  /** Records one query: what ran it, under which profile tag. */
  record(provider: string | null, model: string | null, profileTag: string | undefined): void {
    this.queries++;
    this.#models.add(`${provider ?? '?'}/${model ?? '?'}`);
    if (profileTag !== undefined) this.#tags.add(profileTag);
  }

  get modelsUsed(): string[] {
    return [...this.#models];
  }

  get profileTagsUsed(): string[] {
    return [...this.#tags];
  }
}

/** Sessions by id, bounded (the least recently used go first). */
export class SessionManager {
  readonly #sessions: LRUCache<string, Session>;

  constructor(max = 10_000) {
    this.#sessions = new LRUCache({ max });
  }

  create(owner: string, config: UserConfig): Session {
    const session = new Session(owner, config);
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The session if it exists and belongs to `owner`; otherwise undefined (no hint that it exists). */
  get(id: string, owner: string): Session | undefined {
    const session = this.#sessions.get(id);
    return session?.owner === owner ? session : undefined;
  }

  get size(): number {
    return this.#sessions.size;
  }
}
