/**
 * Option names checked once, when a factory is called: an unknown name is a
 * `TypeError` naming it and the closest valid one, so an app migrating from
 * koa-jwt cannot believe it is protected by an option that is silently
 * ignored.
 *
 * @module
 */

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
 * `valid`, naming the closest valid option (or why a koa-jwt option is not
 * taken). Keys whose value is `undefined` are checked too.
 */
export function checkOptionNames(options: object, valid: ReadonlySet<string>, where: string): void {
  for (const name of Object.keys(options)) {
    if (valid.has(name)) continue;
    const hint = KOA_JWT_HINTS[name];
    if (hint !== undefined) throw new TypeError(`${where}: option "${name}" is not supported: ${hint}.`);
    const closest = closestName(name, valid);
    throw new TypeError(
      `${where}: unknown option "${name}"` + (closest !== undefined ? `; did you mean "${closest}"?` : '.') +
        ` Valid options: ${[...valid].sort().join(', ')}.`,
    );
  }
}

/** The valid name nearest to `name` (case-insensitive edit distance), if it is near enough to be a typo. */
export function closestName(name: string, valid: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const candidate of valid) {
    const d = distance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const candidate = best ?? '';
  const near = bestDistance <= Math.max(2, Math.floor(Math.max(name.length, candidate.length) / 3));
  const contains = candidate !== '' && (candidate.toLowerCase().includes(lower) || lower.includes(candidate.toLowerCase()));
  return near || contains ? best : undefined;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
