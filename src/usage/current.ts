/**
 * The current user's usage, with no argument: `await getUserUsage()` inside
 * a request answers for the user who sent it, from the default meter (the
 * first one created, or the one given to {@link setDefaultUsageMeter}).
 *
 * @module
 */
import { currentUserUuid } from '../api/helpers.js';
import { UserContextMissingError } from '../errors.js';
import type { UsageMeter } from './meter.js';
import type { UserUsage } from './types.js';

const KEY = Symbol.for('koa-user-context.default-usage-meter.v1');
const holder = globalThis as typeof globalThis & { [KEY]?: UsageMeter };

/** Makes `meter` the default one; returns the previous default, if any. */
export function setDefaultUsageMeter(meter: UsageMeter): UsageMeter | undefined {
  if (meter === null || typeof meter !== 'object' || typeof meter.read !== 'function') throw new TypeError('setDefaultUsageMeter() takes a UsageMeter');
  const previous = holder[KEY];
  holder[KEY] = meter;
  return previous;
}

/** Sets `meter` as the default unless there is one already (called by createUsageMeter). */
export function adoptDefaultUsageMeter(meter: UsageMeter): void {
  holder[KEY] ??= meter;
}

/** The default meter, if any. */
export function getDefaultUsageMeter(): UsageMeter | undefined {
  return holder[KEY];
}

/**
 * What the current user has spent: calls, tokens, errors, tool calls, the
 * current period and the limits that apply. Throws
 * `UserContextMissingError` outside a user scope.
 */
export async function getUserUsage(meter: UsageMeter | undefined = holder[KEY]): Promise<UserUsage> {
  const userUuid = currentUserUuid();
  if (userUuid === undefined) throw new UserContextMissingError('getUserUsage() was called outside any user scope: call it inside a request or runAsUser().');
  if (meter === undefined) throw new TypeError('getUserUsage(): no usage meter was created; call createUsageMeter() first, or pass the meter.');
  return meter.read(userUuid);
}

/**
 * Counts one tool call of `userUuid` on MCP server `server` on the default
 * meter, if there is one (the hook the MCP tool bridge, `getUserTools()`,
 * calls after each `execute`); never given arguments or results.
 */
export function countToolCall(server: string, userUuid: string, ok: boolean): void {
  holder[KEY]?.recordToolCall(server, { ok, userUuid });
}
