/**
 * Branded types: protocol numbers and ids that must not be mixed up by accident.
 * A brand exists only at compile time; constructors below check the runtime shape once.
 */
import { toHex } from './bytes.js';
import { ArgumentError } from './errors.js';

declare const brand: unique symbol;
/**
 * `T` tagged with the compile-time name `B`, so e.g. a UserId and a GroupId (both Uint8Array) cannot be
 * swapped.
 */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** 16 raw bytes, SHA-256("relay-uid-v1" || ed25519 public key)[0..16]. */
export type UserId = Brand<Uint8Array, 'UserId'>;
/** 32 lowercase hex characters of a UserId, as used in topics, logs and the UI. */
export type UserIdHex = Brand<string, 'UserIdHex'>;
/** 32 random bytes naming an MLS group. */
export type GroupId = Brand<Uint8Array, 'GroupId'>;
/**
 * 64 lowercase hex characters of a GroupId: how stores, commits and logs name an MLS group (both
 * conversation kinds).
 */
export type GroupIdHex = Brand<string, 'GroupIdHex'>;
/** 32 lowercase hex characters derived from a GroupId (PROTOCOL.md §3). */
export type TopicId = Brand<string, 'TopicId'>;
/** An MLS epoch number: 0 at group creation, +1 per Commit. */
export type Epoch = Brand<bigint, 'Epoch'>;
/** Leading zero bits a proof of work must have: 0..32. */
export type PowBits = Brand<number, 'PowBits'>;
/** Unix time in whole seconds. */
export type UnixSeconds = Brand<number, 'UnixSeconds'>;

/** Length of a UserId, in bytes (16). */
export const USER_ID_LENGTH = 16;
/** Length of an MLS GroupId, in bytes (32). */
export const GROUP_ID_LENGTH = 32;
/**
 * Highest PowBits value that can be expressed (32 leading zero bits); what a sender will mine is capped
 * lower, at MAX_MINED_POW_BITS.
 */
export const MAX_POW_BITS = 32;

/** Brands 16 bytes as a UserId; throws ArgumentError on any other length. Does not copy. */
export function asUserId(bytes: Uint8Array): UserId {
  if (bytes.length !== USER_ID_LENGTH)
    throw new ArgumentError(`user id must be 16 bytes, got ${bytes.length}`);
  return bytes as UserId;
}

/** Brands 32 bytes as a GroupId; throws ArgumentError on any other length. Does not copy. */
export function asGroupId(bytes: Uint8Array): GroupId {
  if (bytes.length !== GROUP_ID_LENGTH)
    throw new ArgumentError(`group id must be 32 bytes, got ${bytes.length}`);
  return bytes as GroupId;
}

const GROUP_ID_HEX_RE = /^[0-9a-f]{64}$/;

/** Brands 64 lowercase hex characters as a GroupIdHex; throws ArgumentError otherwise (uppercase is refused). */
export function asGroupIdHex(hex: string): GroupIdHex {
  if (!GROUP_ID_HEX_RE.test(hex))
    throw new ArgumentError(`group id must be 64 lowercase hex characters, got ${hex.length} characters`);
  return hex as GroupIdHex;
}

/** The GroupIdHex of 32 group id bytes; throws ArgumentError on any other length. */
export function groupIdHexOf(id: Uint8Array): GroupIdHex {
  return toHex(asGroupId(id)) as GroupIdHex;
}

/** Brands an integer in 0..32 as PowBits; throws ArgumentError otherwise. */
export function asPowBits(n: number): PowBits {
  if (!Number.isInteger(n) || n < 0 || n > MAX_POW_BITS) {
    throw new ArgumentError(`pow bits must be an integer in 0..${MAX_POW_BITS}, got ${n}`);
  }
  return n as PowBits;
}

/**
 * Brands a non-negative safe integer as UnixSeconds; throws ArgumentError otherwise. A millisecond timestamp
 * would pass too, so convert first.
 */
export function asUnixSeconds(n: number): UnixSeconds {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new ArgumentError(`unix seconds must be a non-negative integer`);
  return n as UnixSeconds;
}

/** Brands a non-negative bigint as an MLS Epoch; throws ArgumentError on a negative one. */
export function asEpoch(n: bigint): Epoch {
  if (n < 0n) throw new ArgumentError('epoch must be non-negative');
  return n as Epoch;
}
