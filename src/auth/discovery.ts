/**
 * OpenID Connect discovery (OpenID Connect Discovery 1.0 §4): the provider
 * metadata at `<issuer>/.well-known/openid-configuration`, whose `issuer`
 * must equal the issuer asked for exactly, and whose `jwks_uri` names the key
 * set. Fetched with Node's http/https so the JWKS `requestAgent` applies.
 *
 * @module
 */
import * as http from 'node:http';
import * as https from 'node:https';

/** The parts of the provider metadata this library reads. */
export interface OpenIdConfiguration {
  readonly issuer: string;
  readonly jwks_uri: string;
  readonly id_token_signing_alg_values_supported?: readonly string[];
  readonly [key: string]: unknown;
}

/** Options of {@link discoverOpenIdConfiguration}. */
export interface DiscoveryOptions {
  /** Timeout of the request, in ms. @default 5_000 */
  timeout?: number;
  /** Agent for the request (proxies, custom CAs). @default Node's global agent */
  requestAgent?: http.Agent | https.Agent;
  /** Extra request headers. @default {} */
  requestHeaders?: Record<string, string>;
}

/** Largest metadata or key set document read, in bytes. */
const MAX_BYTES = 1 << 20;

/** The issuer as an http(s) URL without a trailing slash, or a TypeError. */
export function issuerUrl(issuer: unknown, label = 'options.issuer'): URL {
  let url: URL;
  try {
    url = new URL(String(issuer));
  } catch {
    throw new TypeError(`${label} must be the issuer's absolute http(s) URL, got ${JSON.stringify(issuer)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`${label} must use http: or https:, got ${url.protocol}`);
  if (url.search !== '' || url.hash !== '') throw new TypeError(`${label} must not have a query or fragment`);
  return url;
}

/**
 * Fetches and checks the provider metadata of `issuer`. Rejects when the
 * provider cannot be reached or its metadata is not valid for that issuer.
 */
export async function discoverOpenIdConfiguration(issuer: string, options: DiscoveryOptions = {}): Promise<OpenIdConfiguration> {
  const base = issuerUrl(issuer, 'issuer');
  const url = new URL(`${base.href.replace(/\/$/, '')}/.well-known/openid-configuration`);
  const metadata = await getJson(url, options);
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new Error(`The OpenID configuration at ${url.href} is not a JSON object.`);
  }
  const config = metadata as Record<string, unknown>;
  if (config['issuer'] !== issuer) {
    throw new Error(
      `The OpenID configuration at ${url.href} names the issuer ${JSON.stringify(config['issuer'])}, ` +
        `not ${JSON.stringify(issuer)}; give the issuer exactly as the provider spells it.`,
    );
  }
  const jwksUri = config['jwks_uri'];
  if (typeof jwksUri !== 'string') throw new Error(`The OpenID configuration at ${url.href} has no jwks_uri.`);
  issuerUrl(jwksUri, 'jwks_uri');
  return config as OpenIdConfiguration;
}

/** GETs a JSON document (2xx only, at most 1 MiB). */
function getJson(url: URL, options: DiscoveryOptions): Promise<unknown> {
  const { timeout = 5_000, requestAgent, requestHeaders } = options;
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: requestAgent, headers: { accept: 'application/json', ...requestHeaders }, timeout }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BYTES) req.destroy(new Error(`${url.href} answered more than ${MAX_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) {
          return reject(new Error(`${url.href} answered HTTP ${String(res.statusCode)}`));
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (cause) {
          reject(new Error(`${url.href} did not answer JSON`, { cause }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url.href} did not answer within ${timeout} ms`)));
    req.on('error', reject);
  });
}
