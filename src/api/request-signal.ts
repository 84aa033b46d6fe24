/**
 * The abort signal of the current request: aborted when the HTTP client goes
 * away before the response is complete, so an LLM call (or an MCP tool call)
 * started for that request stops instead of running for nobody.
 *
 * ```ts
 * const answer = await llm.complete(prompt, { signal: getRequestSignal() });
 * ```
 *
 * @module
 */
import type { ServerResponse } from 'node:http';
import { als } from '../store/als.js';
import { ClientDisconnectedError } from '../errors.js';
import type { Scope } from '../store/scope.js';

/**
 * The abort signal of the current scope: the request's (aborted on client
 * disconnect) inside the middleware, the one given to `runAsUser(…, { signal })`
 * otherwise; `undefined` outside any scope or when the scope has none.
 * Nested scopes (profile overrides) share their parent's signal.
 */
export function getRequestSignal(): AbortSignal | undefined {
  return als.getStore()?.signal;
}

/**
 * A signal aborted when `res` closes before it finished (the client went
 * away). Called lazily, on the first `getRequestSignal()` of a request, so
 * requests that never ask pay nothing. The abort (and so every `abort`
 * listener) runs inside `scope`, not in the socket's context. @internal
 */
export function responseSignal(res: ServerResponse, scope: Scope): AbortSignal {
  const controller = new AbortController();
  if (res.writableFinished) return controller.signal;
  if (res.destroyed || res.socket?.destroyed === true) {
    controller.abort(new ClientDisconnectedError());
    return controller.signal;
  }
  res.once('close', () => {
    if (!res.writableFinished) als.run(scope, () => controller.abort(new ClientDisconnectedError()));
  });
  return controller.signal;
}
