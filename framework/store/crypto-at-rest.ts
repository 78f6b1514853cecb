/**
 * At-rest encryption of the secret columns (identity keys, MLS state, private key packages, inbound
 * access keys, unconfirmed outgoing texts, conversation data, group meta; see sealed-columns.ts).
 *
 * AES-256-GCM, a fresh random 96-bit nonce per write stored in front of the ciphertext. The AAD binds
 * each ciphertext to its table, column and primary key, so someone with write access to the database
 * cannot move a row's secrets under another key (or into another column) without detection.
 * Random nonces are safe here: a key would need ~2^32 writes before the collision risk matters.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { ArgumentError, StorageError } from '../relay/errors.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_LABEL = 'relay-bot/state-key/v1';
const AAD_LABEL = 'relay-bot/at-rest/v1';

/** Value of a row's at_rest column. */
export const AT_REST_PLAIN = 0;
export const AT_REST_AES256GCM = 1;

/** Where a secret lives; authenticated as AAD. */
export interface SecretSlot {
  table: string;
  column: string;
  key: string;
}

/**
 * The derivation of databases sealed before the state-key record existed (see state-key.ts): 32 raw
 * bytes as they are, any string through one unsalted HKDF-SHA256. Kept only to open such databases
 * once, when the store re-seals them under the current derivation.
 */
export function deriveStateKey(stateKey: Uint8Array | string): Uint8Array {
  if (typeof stateKey === 'string') {
    if (stateKey.length === 0) throw new ArgumentError('RELAY_STATE_KEY must not be empty');
    const ikm = Buffer.from(stateKey, 'utf8');
    return new Uint8Array(hkdfSync('sha256', ikm, Buffer.alloc(0), KEY_LABEL, 32));
  }
  if (stateKey.length !== 32) throw new ArgumentError(`state key must be 32 bytes, got ${stateKey.length}`);
  return stateKey.slice();
}

const aad = (slot: SecretSlot) => Buffer.from(`${AAD_LABEL}\0${slot.table}\0${slot.column}\0${slot.key}`);

const describe = (slot: SecretSlot) => `${slot.table}.${slot.column} of ${slot.key}`;

export class AtRestCipher {
  private readonly key: Buffer | undefined;

  /** `key`: the 32-byte derived state key (state-key.ts); none stores plaintext. */
  constructor(key?: Uint8Array) {
    if (key !== undefined && key.length !== 32)
      throw new ArgumentError(`state key must be 32 bytes, got ${key.length}`);
    this.key = key === undefined ? undefined : Buffer.from(key);
  }

  get encrypted(): boolean {
    return this.key !== undefined;
  }

  /** The at_rest flag to store next to what seal() returns. */
  get flag(): number {
    return this.key ? AT_REST_AES256GCM : AT_REST_PLAIN;
  }

  seal(plain: Uint8Array, slot: SecretSlot): Uint8Array {
    if (!this.key) return plain;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce).setAAD(aad(slot));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return new Uint8Array(Buffer.concat([nonce, body, cipher.getAuthTag()]));
  }

  open(stored: Uint8Array, flag: number, slot: SecretSlot): Uint8Array {
    this.checkFlag(flag, slot);
    if (!this.key) return stored;
    if (stored.length < NONCE_BYTES + TAG_BYTES) throw this.undecryptable(slot);
    const buf = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
    const body = buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, buf.subarray(0, NONCE_BYTES))
      .setAAD(aad(slot))
      .setAuthTag(buf.subarray(buf.length - TAG_BYTES));
    try {
      return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
    } catch (cause) {
      throw this.undecryptable(slot, cause);
    }
  }

  /** Text columns keep the sealed bytes as base64; plaintext stays as it is. */
  sealText(plain: string, slot: SecretSlot): string {
    if (!this.key) return plain;
    return Buffer.from(this.seal(Buffer.from(plain, 'utf8'), slot)).toString('base64');
  }

  openText(stored: string, flag: number, slot: SecretSlot): string {
    this.checkFlag(flag, slot);
    if (!this.key) return stored;
    return Buffer.from(this.open(Buffer.from(stored, 'base64'), flag, slot)).toString('utf8');
  }

  private checkFlag(flag: number, slot: SecretSlot): void {
    if (flag === AT_REST_AES256GCM && !this.key)
      throw new StorageError(
        `${describe(slot)} is encrypted at rest: set RELAY_STATE_KEY to open this store`,
      );
    // Accepting plaintext while a key is set would let anyone with write access plant state.
    if (flag === AT_REST_PLAIN && this.key)
      throw new StorageError(
        `${describe(slot)} was stored without encryption but RELAY_STATE_KEY is set; ` +
          'unset it, or re-create the store with the key',
      );
    if (flag !== AT_REST_PLAIN && flag !== AT_REST_AES256GCM)
      throw new StorageError(`${describe(slot)} has unknown at-rest format ${flag}`);
  }

  private undecryptable(slot: SecretSlot, cause?: unknown): StorageError {
    return new StorageError(
      `cannot decrypt ${describe(slot)}: wrong RELAY_STATE_KEY, or the row was altered or moved`,
      { cause },
    );
  }
}
