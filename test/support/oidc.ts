/**
 * A real OpenID Connect provider (`oidc-provider` from npm) on 127.0.0.1 for
 * the token tests: RS256, PS256, ES256 and EdDSA keys, client_credentials
 * with JWT access tokens (RFC 9068, one resource indicator per algorithm),
 * authorization_code driven headless through its dev interactions (for ID
 * tokens), key rotation and stop/restart on the same port.
 */
import { generateKeyPairSync, randomBytes, randomUUID, type JsonWebKey } from 'node:crypto';
import type { Server } from 'node:http';
import Provider from 'oidc-provider';

export type SigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

/** A private key set with one key per family, each with a fresh kid. */
export function newKeySet(tag: string): JsonWebKey[] {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${tag}`, use: 'sig' },
    { ...ec, kid: `ec-${tag}`, use: 'sig' },
    { ...ed, kid: `ed-${tag}`, use: 'sig' },
  ];
}

/** The API's audience for tokens signed with `alg`. */
export const audienceFor = (alg: SigningAlg): string => `urn:kuc:api:${alg.toLowerCase()}`;

export class OidcProvider {
  readonly issuer: string;
  /** Service clients (client_credentials); their ids are UUIDs, so they are valid user ids as `sub`. */
  readonly serviceClients = Array.from({ length: 4 }, () => ({ id: randomUUID(), secret: randomBytes(32).toString('base64url') }));
  /** Web client (authorization_code). */
  readonly webClient = { id: randomUUID(), secret: randomBytes(32).toString('base64url') };
  readonly redirectUri: string;
  keys: JsonWebKey[];
  /** JWKS and discovery requests served. */
  jwksHits = 0;
  #server: Server | undefined;

  constructor(readonly port: number, keys: JsonWebKey[] = newKeySet('1')) {
    this.issuer = `http://127.0.0.1:${port}`;
    this.redirectUri = `http://127.0.0.1:${port}/cb`;
    this.keys = keys;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** Starts a provider with the current key set (a new instance each time, as after a restart). */
  async start(): Promise<this> {
    const provider = new Provider(this.issuer, {
      clients: [
        ...this.serviceClients.map((c) => ({
          client_id: c.id, client_secret: c.secret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [],
        })),
        {
          client_id: this.webClient.id, client_secret: this.webClient.secret, grant_types: ['authorization_code'],
          redirect_uris: [this.redirectUri], response_types: ['code'],
        },
      ],
      jwks: { keys: this.keys as never },
      findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id }) }),
      pkce: { required: () => false },
      ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
      features: {
        clientCredentials: { enabled: true },
        devInteractions: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audienceFor('RS256'),
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => {
            const alg = resource.slice('urn:kuc:api:'.length).toUpperCase().replace('EDDSA', 'EdDSA');
            return { scope: 'api:read', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg } } };
          },
        },
      },
      enabledJWA: { idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'] } as never,
    } as never);
    provider.use(async (ctx, next) => {
      if (ctx.path.includes('jwks') || ctx.path.includes('openid-configuration')) this.jwksHits++;
      await next();
    });
    const server = provider.listen(this.port, '127.0.0.1') as unknown as Server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    this.#server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  /** An access token from client_credentials, signed with `alg`. */
  async accessToken(alg: SigningAlg = 'RS256', client = this.serviceClients[0]!): Promise<string> {
    const res = await freshFetch(`${this.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api:read', resource: audienceFor(alg) }),
    });
    const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || body.access_token === undefined) throw new Error(`token endpoint: ${res.status} ${JSON.stringify(body)}`);
    return body.access_token;
  }

  /**
   * An ID token (and an access token) for `accountId` from authorization_code,
   * driven headless through the provider's dev login and consent forms.
   */
  async authorizationCode(accountId: string): Promise<{ idToken: string; accessToken: string }> {
    const jar = new Map<string, string>();
    const go = async (url: string, init: RequestInit = {}): Promise<Response> => {
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const res = await freshFetch(new URL(url, this.issuer), { ...init, redirect: 'manual', headers: { ...(init.headers as object), ...(cookie ? { cookie } : {}) } });
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';');
        const eq = pair!.indexOf('=');
        jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
      }
      return res;
    };
    const form = (fields: Record<string, string>): RequestInit => ({
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields),
    });
    const auth = new URLSearchParams({
      client_id: this.webClient.id, response_type: 'code', scope: 'openid', redirect_uri: this.redirectUri,
      state: randomUUID(), nonce: randomUUID(), resource: audienceFor('RS256'),
    });
    let res = await go(`/auth?${auth}`);
    for (let step = 0; step < 10; step++) {
      const location = res.headers.get('location');
      if (location === null) throw new Error(`authorization flow stopped: ${res.status} ${await res.text()}`);
      if (location.startsWith(this.redirectUri)) {
        const code = new URL(location).searchParams.get('code');
        if (code === null) throw new Error(`no code in ${location}`);
        return this.#redeem(code);
      }
      res = await go(location);
      if (res.status === 200) {
        const html = await res.text();
        const action = /action="([^"]+)"/.exec(html)?.[1];
        if (action === undefined) throw new Error('no form in interaction page');
        const fields: Record<string, string> = html.includes('name="login"') ? { prompt: 'login', login: accountId, password: 'x' } : { prompt: 'consent' };
        res = await go(action.replace(/&amp;/g, '&'), form(fields));
      }
    }
    throw new Error('authorization flow did not reach the redirect_uri');
  }

  async #redeem(code: string): Promise<{ idToken: string; accessToken: string }> {
    const res = await freshFetch(`${this.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${this.webClient.id}:${this.webClient.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: this.redirectUri }),
    });
    const body = (await res.json()) as { id_token?: string; access_token?: string };
    if (!res.ok || body.id_token === undefined || body.access_token === undefined) throw new Error(`token endpoint: ${res.status} ${JSON.stringify(body)}`);
    return { idToken: body.id_token, accessToken: body.access_token };
  }
}

/**
 * fetch, retried once when a keep-alive socket from before a provider
 * restart turns out closed ("other side closed").
 */
async function freshFetch(url: string | URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw error;
    return fetch(url, init);
  }
}
