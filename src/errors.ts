/**
 * Every failure this library reports is an instance of {@link UserContextError}
 * with a stable `code` (`ERR_…`). Errors that reach an HTTP client also carry
 * the `status` and the snake_case `error` string sent in the JSON body.
 *
 * @module
 */
export * from './errors/base.js';
export * from './errors/auth.js';
export * from './errors/store.js';
export * from './errors/agents.js';
export * from './errors/llm.js';
export * from './errors/usage.js';
