/**
 * RELAY_STATE_KEY → the 32-byte key that seals the secret columns.
 *
 * A raw key (32 bytes, 64 hex characters, or base64 of 32 bytes) is used as it is: it has full
 * entropy already. Anything else is a passphrase and goes through scrypt with a random salt kept in
 * the database (relay_meta), so one precomputed dictionary does not fit every database and each
 * guess costs the attacker what one bot start costs us.
 *
 * The record also holds a check value sealed under the derived key: a wrong key is refused at
 * open (and by `keys rotate-state-key`) with one clear error, before any row is read.
 */
import { randomBytes, scrypt, type ScryptOptions } from 'node:crypto';
import { ArgumentError, StorageError } from '../relay/errors.js';
import { AtRestCipher, type SecretSlot } from './crypto-at-rest.js';

/** RELAY_STATE_KEY as given: raw key bytes, or text (64 hex, base64 of 32 bytes, or a passphrase). */
export type StateKeyInput = Uint8Array | string;

/**
 * N = 2^17, r = 8, p = 1: 128 MiB per derivation, OWASP's recommended scrypt setting. Measured on
 * a shared 2-core machine under load (load average 12): 1.0 s fastest, 1.3 s median, against
 * 0.3 s / 0.6 s for 2^15. Paid once per process start (and per CLI command), which nobody notices,
 * while every passphrase guess costs an attacker four times what 2^15 would. The parameters are
 * stored with the salt, so a later release can raise them for new databases.
 */
export const SCRYPT_DEFAULTS: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Upper bounds on what a stored record may ask for: a planted record must not exhaust memory. */
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** What relay_meta holds under STATE_KEY_META, as JSON. */
export interface StateKeyRecord {
  v: 1;
  /** base64, 16 random bytes. */
  salt: string;
  scrypt: ScryptParams;
  /** base64 of CHECK_PLAINTEXT sealed under the derived key. */
  check: string;
}

export const STATE_KEY_META = 'state_key';
const CHECK_SLOT: SecretSlot = { table: 'relay_meta', column: 'value', key: STATE_KEY_META };
const CHECK_PLAINTEXT = Buffer.from('relay-bot/state-key-check/v1');

export type ParsedStateKey = { raw: Uint8Array } | { passphrase: string };

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
// Standard or URL-safe alphabet, padded or not: 43 characters carry 32 bytes.
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;

/** Raw key or passphrase; see the module comment. A 32-byte base64 string wins over a passphrase. */
export function parseStateKey(input: StateKeyInput): ParsedStateKey {
  if (typeof input !== 'string') {
    if (input.length !== KEY_BYTES)
      throw new ArgumentError(`a raw state key must be ${KEY_BYTES} bytes, got ${input.length}`);
    return { raw: input.slice() };
  }
  if (input.length === 0) throw new ArgumentError('RELAY_STATE_KEY must not be empty');
  if (HEX_KEY.test(input)) return { raw: new Uint8Array(Buffer.from(input, 'hex')) };
  if (BASE64_KEY.test(input)) {
    const bytes = Buffer.from(input.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length === KEY_BYTES) return { raw: new Uint8Array(bytes) };
  }
  return { passphrase: input };
}

function checkParams(p: ScryptParams): ScryptParams {
  const ok =
    Number.isSafeInteger(p.N) &&
    p.N > 1 &&
    (p.N & (p.N - 1)) === 0 &&
    Number.isSafeInteger(p.r) &&
    p.r > 0 &&
    Number.isSafeInteger(p.p) &&
    p.p > 0 &&
    128 * p.N * p.r <= MAX_SCRYPT_MEMORY;
  if (!ok) throw new StorageError(`relay_meta.state_key has invalid scrypt parameters ${JSON.stringify(p)}`);
  return p;
}

function runScrypt(passphrase: string, salt: Buffer, params: ScryptParams): Promise<Uint8Array> {
  const { N, r, p } = checkParams(params);
  // maxmem: node's default (32 MiB) is below what N = 2^17 needs; allow what the parameters ask for.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, KEY_BYTES, options, (err, key) =>
      err ? reject(err) : resolve(new Uint8Array(key)),
    ),
  );
}

/** The key an input gives under a record: raw as it is, a passphrase through the record's scrypt. */
export async function deriveFromRecord(input: StateKeyInput, record: StateKeyRecord): Promise<Uint8Array> {
  const parsed = parseStateKey(input);
  const key =
    'raw' in parsed
      ? parsed.raw
      : await runScrypt(parsed.passphrase, Buffer.from(record.salt, 'base64'), record.scrypt);
  verifyKey(key, record);
  return key;
}

/** Throws a StorageError naming RELAY_STATE_KEY unless `key` opens the record's check value. */
export function verifyKey(key: Uint8Array, record: StateKeyRecord): void {
  try {
    new AtRestCipher(key).open(Buffer.from(record.check, 'base64'), 1, CHECK_SLOT);
  } catch (cause) {
    throw new StorageError(
      'wrong RELAY_STATE_KEY: it does not open this database (its key check fails). Fix: set the key the database was sealed with',
      { cause },
    );
  }
}

/** A fresh record (new salt) for an input, and the key it derives. */
export async function newStateKeyRecord(
  input: StateKeyInput,
  params: ScryptParams = SCRYPT_DEFAULTS,
): Promise<{ record: StateKeyRecord; key: Uint8Array }> {
  const parsed = parseStateKey(input);
  const salt = randomBytes(SALT_BYTES);
  const key = 'raw' in parsed ? parsed.raw : await runScrypt(parsed.passphrase, salt, params);
  const check = new AtRestCipher(key).seal(CHECK_PLAINTEXT, CHECK_SLOT);
  return {
    record: {
      v: 1,
      salt: salt.toString('base64'),
      scrypt: params,
      check: Buffer.from(check).toString('base64'),
    },
    key,
  };
}

export function parseStateKeyRecord(json: string): StateKeyRecord {
  let r: Partial<StateKeyRecord>;
  try {
    r = JSON.parse(json) as Partial<StateKeyRecord>;
  } catch (cause) {
    throw new StorageError('relay_meta.state_key is not JSON', { cause });
  }
  if (r.v !== 1 || typeof r.salt !== 'string' || typeof r.check !== 'string' || typeof r.scrypt !== 'object')
    throw new StorageError(`relay_meta.state_key has an unknown format (version ${String(r.v)})`);
  return { v: 1, salt: r.salt, check: r.check, scrypt: checkParams(r.scrypt) };
}
