/**
 * The stale-client conflict check, shared by the in-memory and the Redis
 * store: a client handed over from inside a request was built for that
 * request's snapshot (`base`). If another request has since changed a field
 * the client depends on (and this write does not set it), attaching the
 * client would pair it with a configuration it was not built for: the write
 * is refused instead.
 *
 * @internal
 * @module
 */
import { sameValue, type ConfigField, type ResourceName, type UserConfig } from '../context/values.js';
import { ConfigurationConflictError } from '../errors.js';

/** Throws `ConfigurationConflictError` when a resource in the patch was built for a configuration that has changed since. */
export function assertResourceBase(
  baseConfig: UserConfig,
  currentConfig: UserConfig,
  fields: ReadonlyMap<string, unknown>,
  resources: ReadonlyMap<ResourceName, unknown>,
  dependsOn: (name: ResourceName) => readonly ConfigField[],
): void {
  if (baseConfig === currentConfig) return;
  const base = baseConfig as unknown as Record<string, unknown>;
  const current = currentConfig as unknown as Record<string, unknown>;
  for (const [name, value] of resources) {
    if (value === null) continue;
    for (const field of dependsOn(name)) {
      if (!fields.has(field) && !sameValue(base[field], current[field])) {
        throw new ConfigurationConflictError(
          `${name} was built for this request's configuration, but another request changed "${field}" since; ` +
            `nothing was applied. Build it from the current configuration and set it again, or pass "${field}" ` +
            'in the same configureUser() call.',
        );
      }
    }
  }
}
