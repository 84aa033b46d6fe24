/**
 * `koa-user-context/jwks`: a `getKey` resolver backed by jwks-rsa (an
 * optional peer dependency; the root entry never loads it).
 *
 * @module
 */
export { jwksKeyResolver, type JwksKeyResolverOptions } from './auth/jwks.js';
