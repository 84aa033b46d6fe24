/**
 * A corpus of credential-like names and values (case and format variants,
 * headers, connection strings, arguments), each value unique so that any
 * output can be searched for every one of them.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';

/** Names that hold a credential as a whole, as they appear in configs, headers and environments. */
export const CREDENTIAL_NAMES = [
  'key', 'apiKey', 'api_key', 'API-KEY', 'apikey', 'accessKey', 'secretAccessKey', 'AWS_SECRET_ACCESS_KEY',
  'token', 'accessToken', 'refresh_token', 'GITHUB_TOKEN', 'bearer', 'password', 'PGPASSWORD', 'passwd', 'clientSecret',
  'client_secret', 'privateKey', 'PRIVATE_KEY', 'pat', 'GH_PAT', 'Authorization', 'encryptionKey', 'passphrase',
] as const;

/** Header names that hold a credential. */
export const CREDENTIAL_HEADERS = ['x-api-key', 'X-API-KEY', 'Authorization', 'proxy-authorization', 'Cookie', 'x-auth-token'] as const;

export interface CredentialCorpus {
  /** A config object holding every case, at the top and nested (objects in arrays in objects). */
  readonly config: Record<string, unknown>;
  /** Every credential value in {@link config}, with where it sits. */
  readonly secrets: ReadonlyArray<{ readonly where: string; readonly value: string }>;
}

/** A fresh corpus (new values each call). */
export function credentialCorpus(): CredentialCorpus {
  const secrets: Array<{ where: string; value: string }> = [];
  const secret = (where: string): string => {
    const value = `cred${randomBytes(9).toString('hex')}`;
    secrets.push({ where, value });
    return value;
  };
  const level = (at: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const name of CREDENTIAL_NAMES) out[name] = secret(`${at}.${name}`);
    out['headers'] = Object.fromEntries(CREDENTIAL_HEADERS.map((h) => [h, `Bearer ${secret(`${at}.headers.${h}`)}`]));
    // Credentials inside values under harmless names.
    out['url'] = `postgres://app:${secret(`${at}.url (connection string password)`)}@db/x`;
    out['cache'] = `redis://:${secret(`${at}.cache (password without user)`)}@127.0.0.1:6379/0`;
    out['endpoint'] = `https://api.example/v1?api_key=${secret(`${at}.endpoint (api_key query)`)}&region=eu`;
    out['args'] = ['--verbose', `--password=${secret(`${at}.args (--password=)`)}`];
    out['env'] = [`PGPASSWORD=${secret(`${at}.env (PGPASSWORD=)`)}`];
    out['forward'] = { 'X-Custom': `Bearer ${secret(`${at}.forward (Bearer value)`)}` };
    // Harmless names and values that must stay visible.
    out['user'] = 'app';
    out['keyId'] = 'k-2026';
    out['model'] = 'gpt-test';
    return out;
  };
  const config = { ...level('top'), nested: { list: [level('nested.list[0]')] } };
  return { config, secrets };
}

/** Asserts that `output` shows none of the corpus's credentials, naming each one it does show. */
export function expectNoCredentials(output: string, corpus: CredentialCorpus): void {
  const leaked = corpus.secrets.filter((s) => output.includes(s.value)).map((s) => s.where);
  expect(leaked).toEqual([]);
}

/** Asserts the redacted form of a corpus config (what stays visible, what is masked). */
export function expectRedactedCorpus(view: Record<string, unknown>): void {
  for (const name of CREDENTIAL_NAMES) expect(view[name], name).toBe('[redacted]');
  expect(view['url']).toBe('postgres://app:[redacted]@db/x');
  expect(view['cache']).toBe('redis://:[redacted]@127.0.0.1:6379/0');
  expect(view['endpoint']).toBe('https://api.example/v1?api_key=[redacted]&region=eu');
  expect(view['args']).toEqual(['--verbose', '--password=[redacted]']);
  expect(view['env']).toEqual(['PGPASSWORD=[redacted]']);
  expect(view['forward']).toEqual({ 'X-Custom': 'Bearer [redacted]' });
  expect(view).toMatchObject({ user: 'app', keyId: 'k-2026', model: 'gpt-test' });
}
