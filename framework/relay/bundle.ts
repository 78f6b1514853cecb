/**
 * KeyBundle (PROTOCOL.md §4): the signed, retained payload of `{prefix}/u/{user_id}/keys`.
 * The signature covers "relay-bundle-v1" || the bundle's map without key 5, taken from the received
 * bytes (not re-encoded), so fields added by a later protocol version stay covered.
 */
import {
  asPowBits,
  asUnixSeconds,
  MAX_POW_BITS,
  type PowBits,
  type UnixSeconds,
  type UserId,
} from './brand.js';
import { concatBytes, equalBytes, utf8 } from './bytes.js';
import {
  decodeMapWithLayout,
  defineSchema,
  encodeMap,
  mapBytesWithout,
  type MapLayout,
  type SchemaValue,
} from './codec.js';
import { ArgumentError, ProtocolError, RelayError, VerificationError } from './errors.js';
import {
  credentialIdentity,
  deriveUserId,
  ED25519_PUBLIC_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  ed25519Sign,
  ed25519Verify,
  type Identity,
  X25519_KEY_LENGTH,
} from './identity.js';
import { LABEL, PROTOCOL_VERSION } from './labels.js';
import { formatProfile, MAX_PROFILE_BYTES, parseProfile, type Profile } from './profile.js';

/** Largest KeyPackage a key bundle may carry (key 1): 16 KiB. */
export const MAX_KEY_PACKAGE_BYTES = 16 * 1024;
/** Longest display name a key bundle may carry (key 6), in UTF-8 bytes, not characters. */
export const MAX_DISPLAY_NAME_BYTES = 64;
/**
 * Largest encoded key bundle accepted: the KeyPackage and profile limits plus 1 KiB for the other
 * fields (25,600 bytes).
 */
export const MAX_KEY_BUNDLE_BYTES = MAX_KEY_PACKAGE_BYTES + MAX_PROFILE_BYTES + 1024;
const SIGNATURE_KEY = 5;

/**
 * A user's published contact card (PROTOCOL.md §4): how to start an MLS session with them, seal to them, and
 * how much PoW they demand.
 */
export interface KeyBundle {
  /** KeyPackage as MLSMessage bytes (RFC 9420 §6). */
  keyPackage: Uint8Array;
  /** X25519 sealed-sender public key. */
  sealedSenderKey: Uint8Array;
  issuedAt: UnixSeconds;
  powBits: PowBits;
  displayName?: string;
  /** Key 7 (§8): whether this is a bot, what it does, its commands; signed like every other field. */
  profile?: Profile;
  /** Ed25519 (RFC 8032) by the KeyPackage's credential key. */
  signature: Uint8Array;
}

/** The fields of a KeyBundle before signKeyBundle adds the signature. */
export type UnsignedKeyBundle = Omit<KeyBundle, 'signature'>;

/**
 * The CBOR field layout and limits of a KeyBundle (version 1), for tooling; encodeKeyBundle and the bundle
 * verifier use it.
 */
export const keyBundleSchema = defineSchema('KeyBundle', MAX_KEY_BUNDLE_BYTES, {
  version: { key: 0, type: 'uint', required: true, min: PROTOCOL_VERSION, max: PROTOCOL_VERSION },
  keyPackage: { key: 1, type: 'bytes', required: true, minLength: 1, maxLength: MAX_KEY_PACKAGE_BYTES },
  sealedSenderKey: { key: 2, type: 'bytes', required: true, length: X25519_KEY_LENGTH },
  issuedAt: { key: 3, type: 'uint', required: true },
  powBits: { key: 4, type: 'uint', required: true, max: MAX_POW_BITS },
  signature: { key: SIGNATURE_KEY, type: 'bytes', required: true, length: ED25519_SIGNATURE_LENGTH },
  displayName: { key: 6, type: 'text', required: false, maxBytes: MAX_DISPLAY_NAME_BYTES },
  profile: { key: 7, type: 'text', required: false, maxBytes: MAX_PROFILE_BYTES },
});

function toWire(b: UnsignedKeyBundle, signature: Uint8Array): SchemaValue<typeof keyBundleSchema.fields> {
  return {
    version: PROTOCOL_VERSION,
    keyPackage: b.keyPackage,
    sealedSenderKey: b.sealedSenderKey,
    issuedAt: b.issuedAt,
    powBits: b.powBits,
    signature,
    displayName: b.displayName,
    profile: b.profile && formatProfile(b.profile),
  };
}

/** Deterministic CBOR of an already signed bundle, the payload to retain on the keys topic. */
export function encodeKeyBundle(b: KeyBundle): Uint8Array {
  return encodeMap(keyBundleSchema, toWire(b, b.signature));
}

function decodeWithLayout(bytes: Uint8Array): { bundle: KeyBundle; layout: MapLayout } {
  const { value: v, layout } = decodeMapWithLayout(keyBundleSchema, bytes);
  const bundle: KeyBundle = {
    keyPackage: v.keyPackage,
    sealedSenderKey: v.sealedSenderKey,
    issuedAt: v.issuedAt as UnixSeconds,
    powBits: v.powBits as PowBits,
    signature: v.signature,
  };
  if (v.displayName !== undefined) bundle.displayName = v.displayName;
  if (v.profile !== undefined) bundle.profile = parseProfile(v.profile);
  return { bundle, layout };
}

/**
 * Shape only (CodecError): pow_bits > 32, a display name over 64 bytes, a profile over 8 KiB or not a
 * profile's JSON, or bad UTF-8 are rejected here.
 */
export function decodeKeyBundle(bytes: Uint8Array): KeyBundle {
  return decodeWithLayout(bytes).bundle;
}

/** "relay-bundle-v1" || CBOR(map without key 5). */
function signedBytes(mapWithoutSignature: Uint8Array): Uint8Array {
  return concatBytes(utf8(LABEL.bundle), mapWithoutSignature);
}

/**
 * Signs the bundle fields with the identity's Ed25519 key over exactly the bytes a verifier will derive;
 * throws ArgumentError on bad pow_bits or issued_at.
 */
export function signKeyBundle(fields: UnsignedKeyBundle, identity: Identity): KeyBundle {
  asPowBits(fields.powBits);
  asUnixSeconds(fields.issuedAt);
  // Encode with a placeholder signature and cut key 5 out, so signer and verifier derive the signed
  // bytes the same way.
  const draft = encodeMap(keyBundleSchema, toWire(fields, new Uint8Array(ED25519_SIGNATURE_LENGTH)));
  const { layout } = decodeMapWithLayout(keyBundleSchema, draft);
  const signature = ed25519Sign(
    identity.signingSeed,
    signedBytes(mapBytesWithout(draft, layout, SIGNATURE_KEY)),
  );
  const out: KeyBundle = { ...fields, signature };
  if (fields.displayName === undefined) delete out.displayName;
  if (fields.profile === undefined) delete out.profile;
  return out;
}

/** PROTOCOL.md §4: issued_at strictly increases per identity even if the clock stepped back. */
export function nextIssuedAt(now: UnixSeconds | number, last?: UnixSeconds | number): UnixSeconds {
  if (!Number.isSafeInteger(now)) throw new ArgumentError('now must be an integer number of seconds');
  return asUnixSeconds(last === undefined ? now : Math.max(now, last + 1));
}

/**
 * Checks the KeyPackage (RFC 9420 §10.1, suite 0x0001, lifetime). Implemented by the MLS module; throws
 * VerificationError (or CodecError for unparsable bytes) when it fails.
 */
export interface KeyPackageVerifier {
  verifyKeyPackage(
    keyPackage: Uint8Array,
    now: UnixSeconds,
  ): Promise<{ identityKey: Uint8Array; credentialIdentity: Uint8Array }>;
}

/**
 * Inputs to verifyKeyBundle besides the bytes: the time, the last accepted issued_at (to refuse rollbacks),
 * and the KeyPackage verifier.
 */
export interface VerifyKeyBundleOptions {
  now: UnixSeconds;
  /** issued_at of the bundle already accepted for this user, if any. */
  lastAcceptedIssuedAt?: UnixSeconds;
  verifier: KeyPackageVerifier;
}

/** A bundle that passed every check of verifyKeyBundle, with the credential key it was signed by. */
export interface VerifiedKeyBundle {
  bundle: KeyBundle;
  /** The Ed25519 credential key the user id derives from. */
  identityKey: Uint8Array;
  /** issued_at equals the one already accepted (a retained message seen again). */
  redelivery: boolean;
}

/**
 * PROTOCOL.md §4 acceptance, cheapest check first: shape (CodecError) → not older than the accepted
 * bundle (ProtocolError) → KeyPackage (verifier) → credential identity is the topic's user id and
 * derives from the credential key → bundle signature (VerificationError).
 */
export async function verifyKeyBundle(
  bytes: Uint8Array,
  expectedUserId: UserId,
  opts: VerifyKeyBundleOptions,
): Promise<VerifiedKeyBundle> {
  const { bundle, layout } = decodeWithLayout(bytes);
  const last = opts.lastAcceptedIssuedAt;
  if (last !== undefined && bundle.issuedAt < last) {
    throw new ProtocolError(`KeyBundle issued_at ${bundle.issuedAt} is older than the accepted ${last}`);
  }

  let kp: { identityKey: Uint8Array; credentialIdentity: Uint8Array };
  try {
    kp = await opts.verifier.verifyKeyPackage(bundle.keyPackage, opts.now);
  } catch (err) {
    if (err instanceof RelayError) throw err;
    // A library choking on hostile bytes is still just an invalid KeyPackage.
    throw new VerificationError('KeyBundle: KeyPackage did not verify', { cause: err });
  }
  if (!(kp.identityKey instanceof Uint8Array) || kp.identityKey.length !== ED25519_PUBLIC_LENGTH) {
    throw new VerificationError('KeyBundle: credential key is not an Ed25519 public key');
  }
  if (!equalBytes(kp.credentialIdentity, credentialIdentity(expectedUserId))) {
    throw new VerificationError("KeyBundle: credential identity is not the topic's user id");
  }
  if (!equalBytes(deriveUserId(kp.identityKey), expectedUserId)) {
    throw new VerificationError('KeyBundle: user id does not derive from the credential key');
  }
  const signed = signedBytes(mapBytesWithout(bytes, layout, SIGNATURE_KEY));
  if (!ed25519Verify(kp.identityKey, signed, bundle.signature)) {
    throw new VerificationError('KeyBundle: signature does not verify');
  }
  return { bundle, identityKey: kp.identityKey, redelivery: last !== undefined && bundle.issuedAt === last };
}
