/**
 * X25519 keys on node:crypto without JWK and without exporting from a generated key.
 *
 * Why this shape: on Node 20, `KeyObject.export({ format: 'jwk' })` of an X25519 key holds the key's
 * mutex while it allocates the result strings. If that allocation triggers a GC that collects the
 * finished key-generation job (`KeyGenJob`, which `generateKeyPairSync` creates too) that made the
 * same key, the job's destructor takes that mutex on the same thread and the process hangs forever
 * (test/fuzz/README.md, tools/crypto-deadlock-stress.ts). So: keys are only ever imported from their
 * raw bytes (okp-import.ts: as JWK, the cheapest import Node 20 has); no key is exported. A generated
 * key's public bytes come from a DH with the base point instead of an export, and a private key
 * that must be serializable is drawn as random bytes and imported, so no job ever made it.
 *
 * Errors: malformed input lengths are ArgumentError; DH results that RFC 9180 §7.1.4 rejects are
 * VerificationError (the peer key came off the network).
 */
import { KeyObject, createPublicKey, diffieHellman, generateKeyPairSync, randomFillSync } from 'node:crypto';
import type { Key } from 'hpke';
import { ArgumentError, VerificationError } from './errors.js';
import { importOkpPrivate, importOkpPublic } from './okp-import.js';

export const X25519_KEY_LENGTH = 32;

/** RFC 8410 §4: SubjectPublicKeyInfo { id-X25519, BIT STRING (32 bytes) }. */
const SPKI_X25519_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
]);

/** Fresh, unshared bytes: node:crypto may hand back views into its pooled slab. */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** The X25519 base point u = 9 (RFC 7748 §4.1): DH(sk, base point) is sk's public key. */
const BASE_POINT = createPublicKey({
  key: Buffer.concat([SPKI_X25519_PREFIX, Uint8Array.of(9), new Uint8Array(31)]),
  format: 'der',
  type: 'spki',
});

/**
 * An X25519 key as the `hpke` package sees it (algorithm name, type, extractable) around a
 * node:crypto KeyObject. Public keys keep their 32-byte encoding, because every Encap and Decap
 * needs it for kem_context (RFC 9180 §4.1); extractable private keys keep theirs, because the only
 * other way to get it back is an export.
 */
export class X25519Key implements Key {
  readonly algorithm = { name: 'X25519' } as const;

  private constructor(
    readonly type: 'public' | 'private',
    readonly extractable: boolean,
    /** @internal */ readonly keyObject: KeyObject,
    /** @internal Public keys: the 32-byte encoding. Private keys: empty. */ readonly publicBytes: Uint8Array,
    /** @internal Extractable private keys: the 32-byte scalar. Otherwise empty. */ readonly scalar: Uint8Array,
  ) {}

  /**
   * Synchronous: a per-message Decap used to await WebCrypto's raw import (a promise hop, ~2x the
   * CPU of the JWK import in okp-import.ts, which builds the key from the same 32 bytes).
   */
  static fromPublicBytes(pk: Uint8Array): X25519Key {
    if (pk.length !== X25519_KEY_LENGTH) {
      throw new ArgumentError(`X25519 public keys are ${X25519_KEY_LENGTH} bytes`);
    }
    const bytes = own(pk);
    return new X25519Key('public', true, importOkpPublic('X25519', bytes), bytes, EMPTY);
  }

  /** Raw import (okp-import.ts); OpenSSL derives the public half, which publicKey() reads by DH. */
  static fromPrivateBytes(sk: Uint8Array, extractable: boolean): X25519Key {
    if (sk.length !== X25519_KEY_LENGTH) {
      throw new ArgumentError(`X25519 private keys are ${X25519_KEY_LENGTH} bytes`);
    }
    const keyObject = importOkpPrivate('X25519', sk);
    return new X25519Key('private', extractable, keyObject, EMPTY, extractable ? own(sk) : EMPTY);
  }

  /** The private scalar; only extractable keys have it. */
  secretBytes(): Uint8Array {
    if (this.type !== 'private' || !this.extractable) {
      throw new ArgumentError('X25519 private key is not extractable');
    }
    return own(this.scalar);
  }

  /** The public key of a private key: its KeyObject shares the private one's, its bytes come from DH. */
  publicKey(): X25519Key {
    if (this.type !== 'private') throw new ArgumentError('expected an X25519 private key');
    return new X25519Key('public', true, createPublicKey(this.keyObject), this.publicBytesOfPrivate(), EMPTY);
  }

  /**
   * The 32-byte public key of a private key, by DH with the base point (never an export). Kept
   * once computed: the key is immutable, and an HPKE Open without a key pair (MLS's) needs it for
   * every Decap.
   */
  publicBytesOfPrivate(): Uint8Array {
    if (this.type !== 'private') throw new ArgumentError('expected an X25519 private key');
    this.derived.publicBytes ??= rawDh(this.keyObject, BASE_POINT);
    return own(this.derived.publicBytes);
  }

  /** @internal Private keys: the public bytes once computed. A plain field: `hpke` hands keys around as Readonly<Key>. */
  readonly derived: { publicBytes?: Uint8Array } = {};

  /**
   * A fresh key pair. Non-extractable pairs come from OpenSSL's generator (the cheapest path; the
   * key is never exported, so its generation job cannot deadlock with an export). Extractable ones
   * are random bytes imported, so the scalar is known without an export.
   */
  static generate(extractable: boolean): { privateKey: X25519Key; publicKey: X25519Key } {
    const privateKey = X25519Key.generatePrivate(extractable);
    return { privateKey, publicKey: privateKey.publicKey() };
  }

  /**
   * An HPKE Encap's ephemeral: the private key and the public key's bytes (enc), without the
   * public KeyObject generate() builds and Encap never uses. Measured alternatives (process CPU,
   * bench/crypto-bound.ts): generateKeyPairSync with an SPKI DER publicKeyEncoding (the bytes
   * without the DH) costs more than this, OpenSSL's DER encoder being slower than a scalar
   * multiplication; random bytes imported and a DH about the same; @noble/curves' x25519 ~10x.
   */
  static generateEphemeral(): { privateKey: X25519Key; publicBytes: Uint8Array } {
    const privateKey = X25519Key.generatePrivate(false);
    return { privateKey, publicBytes: privateKey.publicBytesOfPrivate() };
  }

  private static generatePrivate(extractable: boolean): X25519Key {
    if (!extractable) {
      return new X25519Key('private', false, generateKeyPairSync('x25519').privateKey, EMPTY, EMPTY);
    }
    const sk = randomFillSync(new Uint8Array(X25519_KEY_LENGTH));
    try {
      return X25519Key.fromPrivateBytes(sk, true);
    } finally {
      sk.fill(0);
    }
  }
}

const EMPTY = new Uint8Array(0);

function rawDh(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  const shared = diffieHellman({ privateKey, publicKey });
  const out = own(shared);
  shared.fill(0);
  return out;
}

/**
 * DH(sk, pk) with the RFC 9180 §7.1.4 check: an all-zero output means pk was a low-order point,
 * and the sender's or recipient's contribution would not matter. OpenSSL already refuses that
 * result (RFC 7748 §6.1 leaves the check to the caller, and OpenSSL performs it), so its error and
 * the explicit zero test below are the same rejection; the second only guards against a build
 * that drops the first.
 */
export function x25519Dh(sk: X25519Key, pk: X25519Key): Uint8Array {
  let out: Uint8Array;
  try {
    out = rawDh(sk.keyObject, pk.keyObject);
  } catch (cause) {
    throw new VerificationError('X25519 rejected the peer key (low-order point)', { cause });
  }
  let acc = 0;
  for (const b of out) acc |= b;
  if (out.length !== X25519_KEY_LENGTH || acc === 0) {
    throw new VerificationError('X25519 produced the all-zero shared secret (RFC 9180 §7.1.4)');
  }
  return out;
}
