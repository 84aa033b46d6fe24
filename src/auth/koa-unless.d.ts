// koa-unless 1.x ships no declarations; src/auth/middleware.ts types it
// precisely (UnlessOptions). Internal: no emitted declaration refers to it.
declare module 'koa-unless' {
  const unless: (this: unknown, options: unknown) => unknown;
  export default unless;
}
