/**
 * Runs the store's scripts: one per call on the user's key (so a Cluster
 * routes it to the key's node), with the store's command timeout and, for
 * writes, the fence deadline (see fence.ts), mapping every failure to
 * `ContextStoreUnavailableError` (503 for the request).
 *
 * @internal
 * @module
 */
import { ContextStoreUnavailableError } from '../errors.js';
import { localNow, type RedisClock } from './fence.js';
import type { Script } from './scripts.js';
import type { RedisClient } from './topology.js';

/** A write refused by its version precondition (someone wrote in between). */
export class VersionMoved extends Error {}

export class ScriptRunner {
  readonly #client: RedisClient;
  readonly #clock: RedisClock;
  readonly #timeout: number;
  /** Writes Redis refused because they reached it after their deadline. */
  fenced = 0;

  constructor(client: RedisClient, clock: RedisClock, timeout: number) {
    this.#client = client;
    this.#clock = clock;
    this.#timeout = timeout;
  }

  /**
   * Runs `script` on `key`. `args` receives the fence deadline (Redis clock,
   * ms; '' for scripts that do not write): the failure this method reports
   * `commandTimeout` after sending is final. `also`: a second key the
   * script declares (same slot).
   */
  async run(script: Script, key: string, args: (deadline: string) => string[], also?: string): Promise<unknown> {
    const status = this.#client.status;
    if (status !== 'ready') {
      throw new ContextStoreUnavailableError(`Redis is not connected (${status}); retry in a few seconds.`);
    }
    const sentAt = localNow();
    const deadline = this.#clock.deadline(sentAt, this.#timeout);
    if (script.fenced && deadline === undefined) {
      throw new ContextStoreUnavailableError("Redis's clock is not measured yet (the connection is new); retry in a few seconds.");
    }
    const argv = args(deadline?.toFixed(3) ?? '');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      // Never before sentAt + timeout on the fence's clock (timers may fire a little early).
      const arm = (): void => {
        const left = sentAt + this.#timeout - localNow();
        if (left > 0) timer = setTimeout(arm, Math.ceil(left));
        else {
          reject(new ContextStoreUnavailableError(
            `Redis did not answer within ${this.#timeout} ms; retry shortly (a write is never applied after this error).`,
          ));
        }
      };
      arm();
    });
    try {
      return await Promise.race([evalScript(this.#client, script, also === undefined ? [key] : [key, also], argv), timeout]);
    } catch (error) {
      const message = error instanceof Error ? error.message : '';
      if (message.startsWith('KUC_CONFLICT')) throw new VersionMoved(message);
      if (message.startsWith('KUC_FENCED')) {
        this.fenced++;
        throw new ContextStoreUnavailableError(
          `Redis reached this write after its deadline (${message.slice(11)} ms late) and refused it; nothing was applied. Retry shortly.`,
          { cause: error },
        );
      }
      throw toUnavailable(error);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Runs a script by its SHA, sending its source when the server does not have it yet. */
export async function evalScript(client: RedisClient, script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
  try {
    return await client.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return client.eval(script.source, keys.length, ...keys, ...args);
  }
}

export function toUnavailable(error: unknown): ContextStoreUnavailableError {
  if (error instanceof ContextStoreUnavailableError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new ContextStoreUnavailableError(`The shared context store (Redis) failed: ${detail}. Retry in a few seconds.`, {
    cause: error,
  });
}
