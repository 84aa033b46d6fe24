/**
 * Credential checks, before any client is built: what a provider needs, what
 * the user's `llmCredentials` holds, and the operator's opt-in to the
 * process environment. Messages never contain a credential.
 *
 * @internal
 * @module
 */
import type { LlmCredentials } from '../../context/types.js';
import type { CredentialKind, ProviderDefinition } from './providers.js';

const PARTS = ['apiKey', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'ref', 'provider'] as const;
const MAX_LENGTH = 4096;

/**
 * What is wrong with the shape of a credentials value, or `undefined`. Run on
 * every write, before anything is stored: unknown keys, non-strings, empty or
 * oversized values, control characters (which could split an HTTP header).
 */
export function credentialsShapeProblem(value: unknown): string | undefined {
  if (value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    return '"llmCredentials" must be an object such as { "apiKey": "…" } (or { "ref": "…" }), or null.';
  }
  const keys = Object.keys(value);
  for (const key of keys) {
    if (!(PARTS as readonly string[]).includes(key)) {
      return `"llmCredentials" has an unknown key "${key.slice(0, 40)}"; allowed: ${PARTS.join(', ')}.`;
    }
    const v = (value as Record<string, unknown>)[key];
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_LENGTH || /[\s\u0000-\u001f\u007f]/.test(v)) {
      return `"llmCredentials.${key}" must be a non-empty string of at most ${MAX_LENGTH} characters without spaces or control characters.`;
    }
  }
  if (keys.length === 0) return '"llmCredentials" is empty; send { "apiKey": "…" }, or null to remove the credentials.';
  return undefined;
}

/** Whether `credentials` holds what a provider of `kind` needs. */
export function hasWhatKindNeeds(kind: CredentialKind, credentials: Readonly<LlmCredentials> | undefined): boolean {
  if (kind === 'none') return true;
  if (credentials === undefined) return false;
  if (nonEmpty(credentials.apiKey)) return true;
  return kind === 'aws' && nonEmpty(credentials.accessKeyId) && nonEmpty(credentials.secretAccessKey);
}

/** What a provider of `kind` needs, for error messages. */
export function describeNeed(definition: ProviderDefinition): string {
  return definition.credentials === 'aws'
    ? '"llmCredentials": { "apiKey" } (a Bedrock API key) or { "accessKeyId", "secretAccessKey" }'
    : '"llmCredentials": { "apiKey" }';
}

/**
 * Credentials from the process environment, for a provider whose operator
 * opted in; `undefined` when the variables are not set.
 */
export function environmentCredentials(definition: ProviderDefinition, env: NodeJS.ProcessEnv = process.env): LlmCredentials | undefined {
  const read = (name: string | undefined): string | undefined => {
    const v = name === undefined ? undefined : env[name];
    return nonEmpty(v) ? v : undefined;
  };
  const [first, second, third, fourth] = definition.environment;
  if (definition.credentials === 'aws') {
    const apiKey = read(first);
    if (apiKey !== undefined) return { apiKey };
    const accessKeyId = read(second);
    const secretAccessKey = read(third);
    const sessionToken = read(fourth);
    return accessKeyId !== undefined && secretAccessKey !== undefined
      ? { accessKeyId, secretAccessKey, ...(sessionToken !== undefined ? { sessionToken } : {}) }
      : undefined;
  }
  const apiKey = read(first);
  return apiKey === undefined ? undefined : { apiKey };
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}
