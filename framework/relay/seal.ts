/**
 * Sealed-sender encryption of an inbox envelope (PROTOCOL.md §5 "Seal").
 *
 * HPKE base mode (RFC 9180 §5.1.1) with DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM
 * (KEM 0x0020, KDF 0x0001, AEAD 0x0002, RFC 9180 §7), single-shot (§6.1): one message per context,
 * so the sequence number is always 0. The HPKE protocol (key schedule §5.1, labeled KDF calls §4,
 * context nonce and sequence handling §5.2) is the `hpke` package's; the primitives under it are
 * node:crypto (seal-node-primitives.ts), because the package's WebCrypto primitives spend most of
 * a seal waiting on promise hops rather than computing.
 *
 * Errors: the recipient's own inputs (its id, its secret) are the caller's responsibility and throw
 * ArgumentError when malformed. Everything that came off the network (enc, ciphertext, sent_at, hint)
 * makes `open` throw VerificationError and nothing else, so the receive pipeline can turn any failure
 * into a silent drop with one `instanceof`.
 */
import { CipherSuite, type KeyPair } from 'hpke';
import { ArgumentError, VerificationError } from './errors.js';
import { USER_ID_LENGTH, type UnixSeconds, type UserId } from './brand.js';
import { concatBytes, toHex, u64be, utf8 } from './bytes.js';
import { LABEL } from './labels.js';
import {
  AEAD_AES_256_GCM,
  DHKEM_X25519_HKDF_SHA256,
  KDF_HKDF_SHA256,
  dhkemX25519HkdfSha256,
  x25519PublicKeyOf,
  type X25519Key,
} from './seal-node-primitives.js';

/** X25519 public keys, private keys and the encapsulated key are all 32 bytes (RFC 9180 §7.1). */
export const SEAL_KEY_LENGTH = 32;
/**
 * Length of the HPKE encapsulated key `enc` that seal returns and open expects: 32 bytes, the sender's
 * ephemeral X25519 public key.
 */
export const SEAL_ENC_LENGTH = 32;
/** AES-256-GCM tag length (RFC 9180 §7.3, Nt = 16). */
export const SEAL_TAG_LENGTH = 16;
/** PROTOCOL.md §5: the access field is hint(4) || tag(16); only the hint enters the AAD. */
export const SEAL_HINT_LENGTH = 4;

const INFO_PREFIX = utf8(LABEL.seal);
const AAD_PREFIX = utf8(LABEL.envelopeAad);

/**
 * The suite holds only algorithm descriptions; no keys or per-message state live in it, so one
 * shared instance is a constant, not hidden state.
 */
const SUITE = new CipherSuite(DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM);

/** Tests only: `hpke` has no per-call ephemeral input, so a fixed ikmE needs its own suite. */
function deterministicSuite(ikmE: Uint8Array): CipherSuite<X25519Key> {
  if (ikmE.length < SEAL_KEY_LENGTH) {
    throw new ArgumentError(`unsafeIkmE must be at least ${SEAL_KEY_LENGTH} bytes (RFC 9180 §7.1.3)`);
  }
  return new CipherSuite(dhkemX25519HkdfSha256({ unsafeIkmE: ikmE }), KDF_HKDF_SHA256, AEAD_AES_256_GCM);
}

/** `info = "relay-seal-v1" || recipient_user_id` binds the key schedule to the intended inbox. */
export function sealInfo(recipientId: UserId): Uint8Array {
  if (recipientId.length !== USER_ID_LENGTH) {
    throw new ArgumentError(`recipient id must be ${USER_ID_LENGTH} bytes`);
  }
  return concatBytes(INFO_PREFIX, recipientId);
}

/**
 * `aad = "relay-env-v1" || u64be(sent_at) || hint`: the clear header fields the AEAD must cover, so
 * a relay cannot move an envelope in time or swap its access hint.
 */
export function sealAad(sentAt: UnixSeconds, hint?: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(sentAt) || sentAt < 0) {
    throw new ArgumentError('sent_at must be a non-negative safe integer');
  }
  if (hint === undefined) return concatBytes(AAD_PREFIX, u64be(sentAt));
  if (hint.length !== SEAL_HINT_LENGTH) {
    throw new ArgumentError(`hint must be ${SEAL_HINT_LENGTH} bytes`);
  }
  return concatBytes(AAD_PREFIX, u64be(sentAt), hint);
}

/**
 * What seal needs: the recipient's id (bound in as HPKE info) and sealed-sender key, the plaintext, and the
 * sent_at and optional access hint that go into the AAD.
 */
export interface SealArgs {
  recipientId: UserId;
  /** The recipient's sealed-sender X25519 public key from its verified KeyBundle. */
  recipientSealKey: Uint8Array;
  plaintext: Uint8Array;
  sentAt: UnixSeconds;
  hint?: Uint8Array;
  /** Parsed recipient keys to reuse; without it the key is parsed for this call. */
  keys?: SealKeyCache;
  /**
   * Tests only: derive the ephemeral key with DeriveKeyPair(ikmE) (RFC 9180 §7.1.3) instead of
   * drawing it at random. Reusing an ikmE reuses the AES key and nonce: never set it in production.
   */
  unsafeIkmE?: Uint8Array;
}

/** Result of seal: the encapsulated key and AES-256-GCM ciphertext, which become envelope keys 1 and 2. */
export interface Sealed {
  enc: Uint8Array;
  ciphertext: Uint8Array;
}

/**
 * Seals `plaintext` to the recipient. Throws ArgumentError for malformed arguments, and
 * VerificationError when the recipient key is unusable (a low-order X25519 point gives an all-zero
 * shared secret, which RFC 9180 §7.1.4 requires to abort): that key came from the network.
 */
export async function seal(args: SealArgs): Promise<Sealed> {
  const info = sealInfo(args.recipientId);
  const aad = sealAad(args.sentAt, args.hint);
  if (args.recipientSealKey.length !== SEAL_KEY_LENGTH) {
    throw new ArgumentError(`recipient seal key must be ${SEAL_KEY_LENGTH} bytes`);
  }
  const suite = args.unsafeIkmE === undefined ? SUITE : deterministicSuite(args.unsafeIkmE);
  const recipientPublicKey = args.keys
    ? await cachedKey(args.keys, args.recipientSealKey)
    : await parseRecipientKey(args.recipientSealKey);
  try {
    const sealed = await suite.Seal(recipientPublicKey, args.plaintext, { info, aad });
    return { enc: sealed.encapsulatedSecret, ciphertext: sealed.ciphertext };
  } catch (cause) {
    // A low-order recipient key (all-zero DH output, RFC 9180 §7.1.4) is the expected cause.
    throw new VerificationError('sealing to this recipient key failed', { cause });
  }
}

async function parseRecipientKey(sealKey: Uint8Array): Promise<X25519Key> {
  try {
    return await SUITE.DeserializePublicKey(sealKey);
  } catch (cause) {
    throw new VerificationError('recipient seal key is not an X25519 public key', { cause });
  }
}

/** Reads a SealKeyCache; set once by the class below, so its keys never show in its public shape. */
let cachedKey: (cache: SealKeyCache, sealKey: Uint8Array) => Promise<X25519Key>;

/**
 * Recipients' seal keys, parsed once per key rather than once per envelope (a WebCrypto import
 * each time otherwise): a bot answers the same peers over and over. Bounded; the least recently
 * used key goes first. Keys are looked up by their bytes, so a hit is always the same key.
 */
export class SealKeyCache {
  readonly #keys = new Map<string, X25519Key>();
  readonly #limit: number;

  static {
    cachedKey = (cache, sealKey) => cache.#get(sealKey);
  }

  constructor(limit = 1024) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new ArgumentError('seal key cache limit must be ≥ 1');
    this.#limit = limit;
  }

  /** Keys held. */
  get size(): number {
    return this.#keys.size;
  }

  /** The parsed key; VerificationError when the bytes are no X25519 public key. */
  async #get(sealKey: Uint8Array): Promise<X25519Key> {
    const id = toHex(sealKey);
    const hit = this.#keys.get(id);
    if (hit) {
      // Refresh recency so the working set survives eviction.
      this.#keys.delete(id);
      this.#keys.set(id, hit);
      return hit;
    }
    const key = await parseRecipientKey(sealKey);
    this.#keys.set(id, key);
    if (this.#keys.size > this.#limit) this.#keys.delete(this.#keys.keys().next().value!);
    return key;
  }
}

/**
 * An envelope's parts as received, plus our own user id; sent_at and hint must be the envelope's, since they
 * are authenticated as AAD.
 */
export interface OpenArgs {
  recipientId: UserId;
  enc: Uint8Array;
  ciphertext: Uint8Array;
  sentAt: UnixSeconds;
  hint?: Uint8Array;
}

/**
 * An `open` bound to one imported private key. Importing derives the public key (a scalar
 * multiplication) so that Decap can build kem_context (RFC 9180 §4.1) without redoing it per
 * message; a long-running receiver creates one Opener per sealed-sender key and owns it, and
 * nothing is cached behind the caller's back.
 */
export interface Opener {
  open(args: OpenArgs): Promise<Uint8Array>;
}

/**
 * Imports a sealed-sender secret once and returns an Opener for it; throws ArgumentError if the secret is not
 * 32 bytes or not a usable X25519 key.
 */
export async function createOpener(recipientSealSecret: Uint8Array): Promise<Opener> {
  const recipientKey = await importKeyPair(recipientSealSecret);
  return { open: (args) => openWith(recipientKey, args) };
}

/** One-shot open: imports the key for this call only. Prefer createOpener on a hot path. */
export async function open(args: OpenArgs & { recipientSealSecret: Uint8Array }): Promise<Uint8Array> {
  const recipientKey = await importKeyPair(args.recipientSealSecret);
  return openWith(recipientKey, args);
}

async function importKeyPair(secret: Uint8Array): Promise<KeyPair<X25519Key>> {
  if (secret.length !== SEAL_KEY_LENGTH) {
    throw new ArgumentError(`seal secret must be ${SEAL_KEY_LENGTH} bytes`);
  }
  try {
    const privateKey = await SUITE.DeserializePrivateKey(secret, false);
    return { privateKey, publicKey: x25519PublicKeyOf(privateKey) };
  } catch (cause) {
    throw new ArgumentError('seal secret is not a usable X25519 private key', { cause });
  }
}

async function openWith(recipientKey: KeyPair<X25519Key>, args: OpenArgs): Promise<Uint8Array> {
  const info = sealInfo(args.recipientId);
  if (args.enc.length !== SEAL_ENC_LENGTH) {
    throw new VerificationError(`enc must be ${SEAL_ENC_LENGTH} bytes`);
  }
  if (args.ciphertext.length < SEAL_TAG_LENGTH) {
    throw new VerificationError('ciphertext shorter than the AEAD tag');
  }
  let aad: Uint8Array;
  try {
    aad = sealAad(args.sentAt, args.hint);
  } catch (cause) {
    throw new VerificationError('envelope header does not form a valid AAD', { cause });
  }
  try {
    return await SUITE.Open(recipientKey, args.enc, args.ciphertext, { info, aad });
  } catch (cause) {
    // Low-order enc points (all-zero DH output, RFC 9180 §7.1.4), a wrong key and a failed AEAD
    // tag all land here; the receiver must not learn, or reveal, which one it was.
    throw new VerificationError('envelope does not open', { cause });
  }
}
