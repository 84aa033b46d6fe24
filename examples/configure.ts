/**
 * What POST /configure accepts: the fields a user may set, their shapes, the
 * providers of the example; anything else is a 400 naming the field.
 */
import { credentialsShapeProblem } from '../src/ai.js';
import type { ContextPatch } from '../src/index.js';
import { HttpError } from './body.js';

export const PROVIDERS = ['Google', 'Anthropic', 'OpenAI', 'Amazon', 'Azure', 'Friendli', 'Ollama'] as const;

const CONFIG_FIELDS: Record<string, 'string' | 'object' | 'names'> = {
  provider: 'string',
  model: 'string',
  mcpServerName: 'string',
  mcpServerNames: 'names',
  mcpServerId: 'string',
  awsRegion: 'string',
  azureDeploymentDetails: 'object',
  friendliDetails: 'object',
  modelProviderInProfile: 'string',
  serverConfigs: 'object',
  llmCredentials: 'object',
};

/** Validates a /configure body into a patch, or throws a 400. */
export function parseConfiguration(body: Record<string, unknown>): ContextPatch {
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const kind = CONFIG_FIELDS[key];
    if (kind === undefined) {
      throw new HttpError(400, 'invalid_configuration', `Unknown field "${key}"; allowed: ${Object.keys(CONFIG_FIELDS).join(', ')}.`);
    }
    const isName = (v: unknown): boolean => typeof v === 'string' && v.length > 0 && v.length <= 200;
    const ok = value === null || (kind === 'string' ? isName(value)
      : kind === 'names' ? Array.isArray(value) && value.length <= 20 && value.every(isName)
        : typeof value === 'object' && !Array.isArray(value));
    if (!ok) {
      const want = { string: 'a non-empty string of at most 200 characters', names: 'an array of at most 20 server names', object: 'an object' }[kind];
      throw new HttpError(400, 'invalid_configuration', `"${key}" must be ${want} or null.`);
    }
    patch[key] = value;
  }
  if (typeof patch['provider'] === 'string' && !(PROVIDERS as readonly string[]).includes(patch['provider'])) {
    throw new HttpError(400, 'invalid_configuration', `Unknown provider "${patch['provider']}"; use one of ${PROVIDERS.join(', ')}.`);
  }
  const shape = credentialsShapeProblem(patch['llmCredentials'] ?? null);
  if (shape !== undefined) throw new HttpError(400, 'invalid_configuration', shape);
  if (Object.keys(patch).length === 0) {
    throw new HttpError(400, 'invalid_configuration', 'Send at least one field, e.g. { "provider": "Google", "model": "gemini-2.5-flash" }.');
  }
  return patch as ContextPatch;
}

