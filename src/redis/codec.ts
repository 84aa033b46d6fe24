/**
 * How a user's configuration is written to Redis: one hash per user, one
 * hash field per configuration field (`f:<name>`), each value JSON (`j:…`) or,
 * for the fields that may hold credentials, AES-256-GCM ciphertext (`e1:…`)
 * bound to the user and the field (the additional authenticated data), so a
 * value copied to another user's key or field does not decrypt.
 *
 * @internal
 * @module
 */
import { KeyObject, createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { isResourceName } from '../context/fields.js';
import { isReservedKey } from '../context/values.js';
import { ContextStoreUnavailableError } from '../errors.js';
import { warnOnce } from '../warn.js';

/** A 32-byte AES-256 key: raw bytes, a base64/base64url/hex string of 32 bytes, or a secret `KeyObject`. */
export type EncryptionKeyInput = Buffer | Uint8Array | string | KeyObject;

const FIELD_PREFIX = 'f:';

/** Turns the `encryptionKey` option into a KeyObject once; throws a TypeError naming the option. */
export function toEncryptionKey(input: EncryptionKeyInput): KeyObject {
  let key: KeyObject;
  if (input instanceof KeyObject) {
    if (input.type !== 'secret') throw new TypeError('options.encryptionKey must be a secret KeyObject of 32 bytes');
    key = input;
  } else if (typeof input === 'string') {
    const raw = /^[0-9a-f]{64}$/i.test(input) ? Buffer.from(input, 'hex') : Buffer.from(input, 'base64');
    key = createSecretKey(raw);
  } else if (input instanceof Uint8Array) {
    key = createSecretKey(Buffer.from(input));
  } else {
    throw new TypeError('options.encryptionKey must be 32 bytes: a Buffer, a base64 or hex string, or a secret KeyObject');
  }
  if (key.symmetricKeySize !== 32) {
    throw new TypeError(
      `options.encryptionKey must be exactly 32 bytes (AES-256), got ${String(key.symmetricKeySize)}; ` +
        "generate one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64'))\"",
    );
  }
  return key;
}

/** Encodes and decodes the stored fields of one store. */
export class FieldCodec {
  readonly #key: KeyObject | undefined;
  readonly #secret: ReadonlySet<string>;
  readonly #scope: string;

  /** `scope` (the key prefix) is part of the authenticated data. */
  constructor(key: KeyObject | undefined, secretFields: ReadonlySet<string>, scope: string) {
    this.#key = key;
    this.#secret = secretFields;
    this.#scope = scope;
  }

  /** Flat `[hashField, value, …]` for HSET. */
  encode(userUuid: string, fields: ReadonlyMap<string, unknown>): string[] {
    const out: string[] = [];
    for (const [name, value] of fields) {
      const json = JSON.stringify(value);
      out.push(FIELD_PREFIX + name, value !== null && this.#secret.has(name) ? this.#encrypt(userUuid, name, json) : `j:${json}`);
    }
    return out;
  }

  /** Decodes an HGETALL reply (`[field, value, …]`) into version, last access and fields. */
  decode(userUuid: string, reply: unknown): { version: number; lastAccess: number; fields: Map<string, unknown> } {
    const flat = reply as string[];
    const fields = new Map<string, unknown>();
    let version = 0;
    let lastAccess = 0;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const k = String(flat[i]);
      const v = String(flat[i + 1]);
      if (k === 'v') version = Number(v);
      else if (k === 'a') lastAccess = Number(v);
      else if (k.startsWith(FIELD_PREFIX)) {
        const name = k.slice(FIELD_PREFIX.length);
        if (isReservedKey(name) || isResourceName(name)) continue;
        fields.set(name, this.#decodeValue(userUuid, name, v));
      }
    }
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new ContextStoreUnavailableError(`The stored context of this user has an invalid version "${String(version)}".`);
    }
    return { version, lastAccess, fields };
  }

  #decodeValue(userUuid: string, name: string, value: string): unknown {
    if (value.startsWith('j:')) return JSON.parse(value.slice(2));
    if (value.startsWith('e1:')) return JSON.parse(this.#decrypt(userUuid, name, value.slice(3)));
    throw new ContextStoreUnavailableError(`The stored field "${name}" has an unknown encoding.`);
  }

  #aad(userUuid: string, name: string): Buffer {
    return Buffer.from(`${this.#scope}\u0000${userUuid}\u0000${name}`, 'utf8');
  }

  #encrypt(userUuid: string, name: string, plain: string): string {
    if (this.#key === undefined) throw new Error('unreachable: secret fields require an encryption key');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(this.#aad(userUuid, name));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `e1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  #decrypt(userUuid: string, name: string, encoded: string): string {
    const fail = (why: string): never => {
      warnOnce(
        'KUC_REDIS_DECRYPT',
        `A field stored in Redis could not be decrypted (${why}). Every instance sharing a key prefix must use the same encryptionKey.`,
      );
      throw new ContextStoreUnavailableError(
        `The stored field "${name}" of this user cannot be decrypted by this instance (${why}); the instances do not share one encryptionKey.`,
      );
    };
    if (this.#key === undefined) return fail('no encryptionKey configured');
    const raw = Buffer.from(encoded, 'base64');
    if (raw.length < 28) return fail('truncated ciphertext');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, 12));
      decipher.setAAD(this.#aad(userUuid, name));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      return fail('authentication failed');
    }
  }
}
