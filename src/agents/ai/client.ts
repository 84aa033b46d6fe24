/**
 * The per-user LLM client the registry builds: one AI SDK language model for
 * one configuration, whose calls use the request's abort signal unless told
 * otherwise, so a client that disconnects stops the provider's stream.
 *
 * @module
 */
import { generateText, streamText } from 'ai';
import { getRequestSignal } from '../../api/request-signal.js';
import { LlmClientClosedError } from '../../errors.js';
import type { LanguageModelObject } from './providers.js';

/** Options of {@link UserLlm.generateText}: those of the AI SDK's `generateText`, without `model`. */
export type GenerateTextOptions = Omit<Parameters<typeof generateText>[0], 'model'>;
/** Options of {@link UserLlm.streamText}: those of the AI SDK's `streamText`, without `model`. */
export type StreamTextOptions = Omit<Parameters<typeof streamText>[0], 'model'>;

const BRAND = Symbol.for('koa-user-context.user-llm.v1');

/**
 * A user's LLM client, as `getUserLlmInstance()` returns it when the store's
 * `llmInstance` resource comes from `registry.resource()`. Belongs to the
 * configuration it was built from: a change of provider, model or credentials
 * builds a new one for the next request, and this one is closed once the
 * requests using it have ended.
 */
export class UserLlm {
  /** The provider name, as configured (`'OpenAI'`). */
  readonly provider: string;
  /** The model id sent to the provider. */
  readonly model: string;
  /** The user it was built for. */
  readonly userUuid: string;
  /** The AI SDK model: pass it to `generateText`, `streamText`, `generateObject`, agents… */
  readonly languageModel: LanguageModelObject;
  /** Where its credentials came from: the user's configuration, or the server's environment (operator opt-in). */
  readonly credentialSource: 'user' | 'environment' | 'none';
  /** With a usage meter: a fresh metered model per loop, so tool calls count per loop. */
  readonly #loopModel: (() => LanguageModelObject) | undefined;
  #closed = false;

  constructor(init: {
    provider: string;
    model: string;
    userUuid: string;
    languageModel: LanguageModelObject;
    credentialSource: 'user' | 'environment' | 'none';
    loopModel?: () => LanguageModelObject;
  }) {
    this.provider = init.provider;
    this.model = init.model;
    this.userUuid = init.userUuid;
    this.languageModel = init.languageModel;
    this.credentialSource = init.credentialSource;
    this.#loopModel = init.loopModel;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** Whether a value is a `UserLlm` (of any copy of this package). */
  static is(value: unknown): value is UserLlm {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /** Whether the store has disposed this client. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The AI SDK's `generateText` on this client's model. `abortSignal`
   * defaults to the request's (`getRequestSignal()`): pass one to override.
   */
  generateText(options: GenerateTextOptions): ReturnType<typeof generateText> {
    this.#assertOpen();
    return generateText({ ...options, model: this.#loopModel?.() ?? this.languageModel, abortSignal: options.abortSignal ?? getRequestSignal() } as Parameters<typeof generateText>[0]);
  }

  /**
   * The AI SDK's `streamText` on this client's model. `abortSignal` defaults
   * to the request's, so the provider's stream stops when the HTTP client
   * disconnects.
   */
  streamText(options: StreamTextOptions): ReturnType<typeof streamText> {
    this.#assertOpen();
    return streamText({ ...options, model: this.#loopModel?.() ?? this.languageModel, abortSignal: options.abortSignal ?? getRequestSignal() } as Parameters<typeof streamText>[0]);
  }

  /** Called by the store when the last request using this client's configuration ends. */
  close(): void {
    this.#closed = true;
  }

  /** Never prints the model's settings (which hold the credentials). */
  toJSON(): Record<string, unknown> {
    return { provider: this.provider, model: this.model, userUuid: this.userUuid, credentialSource: this.credentialSource };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `UserLlm { provider: '${this.provider}', model: '${this.model}', credentials: [redacted] }`;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new LlmClientClosedError(
        `The LLM client of ${this.provider}/${this.model} was disposed: its configuration was replaced. ` +
          'Read the client again with getUserLlm() inside the request.',
      );
    }
  }
}
