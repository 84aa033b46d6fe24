/**
 * `koa-user-context/jwks`: a `getKey` resolver for a provider's JWKS (keys
 * fetched and converted by jwks-rsa, an optional peer dependency the root
 * entry never loads), and OpenID Connect discovery.
 *
 * @module
 */
export { jwksKeyResolver, type JwksKeyResolverOptions } from './auth/jwks.js';
export { discoverOpenIdConfiguration, type DiscoveryOptions, type OpenIdConfiguration } from './auth/discovery.js';
