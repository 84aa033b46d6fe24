/**
 * The shape of a user's runtime context: its configuration fields (plain,
 * serialisable data, frozen once committed) and its live resources (an LLM
 * client, an MCP client) which belong to the configuration that built them.
 *
 * @module
 */

/** Deployment details of an Azure OpenAI model. */
export interface AzureDeploymentDetails {
  endpoint?: string;
  deploymentName?: string;
  apiVersion?: string;
  /** Secret: redacted by {@link redactContext}. */
  apiKey?: string;
  readonly [key: string]: unknown;
}

/** Connection details of a Friendli.ai endpoint. */
export interface FriendliDetails {
  endpointUrl?: string;
  modelId?: string;
  /** Secret: redacted by {@link redactContext}. */
  token?: string;
  readonly [key: string]: unknown;
}

/**
 * A user's own credentials for their LLM provider. Secret as a whole: the
 * Redis store encrypts it at rest by default, and every view that leaves the
 * process (HTTP responses through `redactContext`, the admin API, logs,
 * events, errors) shows `"[redacted]"` in its place. Changing it rebuilds the
 * user's LLM client for the next request.
 */
export interface LlmCredentials {
  /** An API key (OpenAI, Anthropic, Google, Azure, Friendli; a Bedrock API key). */
  apiKey?: string;
  /** AWS access key id (Amazon Bedrock), with `secretAccessKey`. */
  accessKeyId?: string;
  /** AWS secret access key (Amazon Bedrock). */
  secretAccessKey?: string;
  /** AWS session token (Amazon Bedrock, temporary credentials). */
  sessionToken?: string;
  /**
   * A reference the app resolves to credentials (a vault path, a secret id)
   * instead of the key itself; see `resolveCredentials` of `koa-user-context/ai`.
   */
  ref?: string;
  /**
   * The provider these credentials belong to. When set, a configuration on
   * another provider (a profile override such as `{ provider: 'Anthropic' }`)
   * does not get them: a key is never sent to a provider it was not made for.
   */
  provider?: string;
}

/**
 * The configuration fields of a user's context. Every field is plain data.
 *
 * Apps add typed fields of their own by declaration merging:
 *
 * ```ts
 * declare module 'koa-user-context' {
 *   interface UserContextFields { tenant: string | null }
 * }
 * ```
 * and give them a default with the store's `defaults` option.
 */
export interface UserContextFields extends BuiltinFields {}

/** The built-in configuration fields (see `BUILTIN_FIELDS` for what the library knows about each). */
export interface BuiltinFields {
  provider: string | null;
  model: string | null;
  mcpServerName: string | null;
  /** Several MCP servers from the operator's registry, by name (`mcpServerName` is the one-server form). */
  mcpServerNames: readonly string[] | null;
  mcpServerId: string | null;
  awsRegion: string | null;
  azureDeploymentDetails: Readonly<AzureDeploymentDetails> | null;
  friendliDetails: Readonly<FriendliDetails> | null;
  modelProviderInProfile: string | null;
  serverConfigs: Readonly<Record<string, unknown>>;
  /** The user's own LLM provider credentials (secret as a whole). */
  llmCredentials: Readonly<LlmCredentials> | null;
}

/**
 * Register the types of the live resources by declaration merging:
 *
 * ```ts
 * declare module 'koa-user-context' {
 *   interface UserContextTypes { llm: MyLlmClient; mcp: Client }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface UserContextTypes {}

/** The registered LLM client type, `unknown` until registered. */
export type LlmInstance = UserContextTypes extends { llm: infer T } ? T : unknown;
/** The registered MCP client type, `unknown` until registered. */
export type McpClient = UserContextTypes extends { mcp: infer T } ? T : unknown;

/** A committed configuration: frozen, never shared mutable state. */
export type UserConfig = Readonly<UserContextFields>;

/** A field name of the configuration. */
export type ConfigField = keyof UserContextFields & string;

/** The live resources a context holds. */
export interface UserResourceValues {
  llmInstance: LlmInstance | null;
  mcpClient: McpClient | null;
}

/** Name of a live resource. */
export type ResourceName = keyof UserResourceValues;

/** What `configureUser()` accepts: any subset of fields and resources. */
export type ContextPatch = Partial<UserContextFields> & Partial<UserResourceValues>;

/**
 * A read-only view of one user's context, as returned by
 * `getUserRuntimeContext()`.
 */
export type UserRuntimeContext = UserConfig &
  UserResourceValues & {
    readonly userUuid: string;
    /** Time of the user's last request or explicit access. */
    readonly lastAccess: Date;
    /** Increases by one on every committed change of this user's context. */
    readonly version: number;
  };
