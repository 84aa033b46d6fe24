/**
 * {@link UserMcpServers}: one user's handles on several MCP servers of the
 * operator's registry (the `mcpServerNames` field) — the value the store
 * caches as the user's `mcpClient` when they pick more than the one
 * `mcpServerName`. Each server keeps its own {@link UserMcpConnection} (pool
 * entry, health checks, rebuilds, tool policy).
 *
 * @module
 */
import { isKind, stamp } from '../../brand.js';
import type { UserMcpConnection } from './connection.js';

/**
 * The brands of the two values, so that this module (which the `/ai` entry
 * loads) recognises them without loading the MCP SDK.
 */
export const CONNECTION_KIND = 'UserMcpConnection';
const SERVERS_KIND = 'UserMcpServers';

/** One user's connections to several MCP servers, in the order they were picked. */
export class UserMcpServers {
  /** @internal The brand other copies of the package recognise. */
  static readonly kind = SERVERS_KIND;
  readonly userUuid: string;
  /** One connection per server, in the order of `mcpServerNames`. */
  readonly connections: readonly UserMcpConnection[];
  #closing: Promise<void> | undefined;

  /** @internal Built by `createMcpClientFactory()`. */
  constructor(userUuid: string, connections: readonly UserMcpConnection[]) {
    this.userUuid = userUuid;
    this.connections = Object.freeze([...connections]);
    stamp(this, UserMcpServers);
  }

  /** The connection to the server of this name, if the user has it. */
  get(serverName: string): UserMcpConnection | undefined {
    return this.connections.find((c) => c.serverName === serverName);
  }

  /** Closes every connection (the store calls it). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.all(this.connections.map((c) => c.close())).then(() => undefined);
    return this.#closing;
  }
}

/**
 * The connections in a user's `mcpClient` value: one, several, or none (a
 * client of another kind). Recognises values of other copies of the package.
 */
export function connectionsOf(value: unknown): readonly UserMcpConnection[] | null {
  if (isKind(value, CONNECTION_KIND)) return [value as UserMcpConnection];
  if (isKind(value, SERVERS_KIND)) return (value as UserMcpServers).connections;
  return null;
}
