/**
 * Option names of the token middleware and resolver, checked once when a
 * factory is called: on top of the library's unknown-option check, a koa-jwt
 * option that has no safe equivalent says why, so an app migrating from
 * koa-jwt cannot believe it is protected by an option that is ignored.
 *
 * @module
 */
import { rejectUnknownOptions } from '../options.js';

/** Why an option of koa-jwt (or of jsonwebtoken, which koa-jwt passes through) is not taken here. */
const KOA_JWT_HINTS: Readonly<Record<string, string>> = {
  debug:
    "koa-jwt's debug only chose between detailed and generic messages: here messages are detailed, " +
    'and genericErrors: true gives koa-jwt\'s default "Authentication Error"',
  ignoreExpiration: 'expired tokens are always refused (requireExp: false only admits tokens without "exp")',
  ignoreNotBefore: 'tokens before their "nbf" are always refused; use clockTolerance for clock skew',
  clockTimestamp: 'the clock is the system clock; use clockTolerance for clock skew',
  complete: 'the verified claims are in ctx.state[key]; the header is not kept',
  subject: 'the user id claim is chosen with subjectClaim and checked by the store\'s userId policy',
  jwtid: 'check "jti" in isRevoked(ctx, claims, token)',
  nonce: 'nonces belong to ID tokens; send access tokens (see requireAccessTokenType)',
  allowInvalidAsymmetricKeyTypes: 'keys must match their algorithm, always',
  jsonWebTokenOptions: 'give the verification options (issuer, audience, clockTolerance, maxAge) at the top level',
};

/**
 * Throws a `TypeError` for the first own key of `options` that is not in
 * `valid`: for a koa-jwt option, why it is not taken; otherwise (via
 * {@link rejectUnknownOptions}) the closest valid option. Keys whose value is
 * `undefined` are checked too.
 */
export function checkOptionNames(options: object, valid: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (valid.includes(name)) continue;
    const hint = KOA_JWT_HINTS[name];
    if (hint !== undefined) throw new TypeError(`${where}: option "${name}" is not supported: ${hint}.`);
  }
  rejectUnknownOptions(options, valid, where);
}
