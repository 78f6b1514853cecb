/**
 * KeyPackages (RFC 9420 §10): creation with a bounded lifetime and verification on receipt.
 *
 * ts-mls defaults a KeyPackage's lifetime to forever and never checks it on receipt; PROTOCOL.md §4
 * wants not_before = now − 1 h, not_after = now + 28 days, checked with ±10 min skew.
 */
import { decodeMlsMessage, encodeMlsMessage, generateKeyPackageWithKey } from 'ts-mls';
import type { Capabilities, KeyPackage, PrivateKeyPackage } from 'ts-mls';
import { makeKeyPackageRef, verifyKeyPackage as verifyKeyPackageSignature } from 'ts-mls/keyPackage.js';
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js';
import { equalBytes } from '../bytes.js';
import { ArgumentError, CodecError, VerificationError } from '../errors.js';
import { credentialIdentityOf, credentialIsValid, userIdFromKey } from './auth.js';
import {
  CLOCK_SKEW,
  KEY_PACKAGE_LIFETIME,
  KEY_PACKAGE_NOT_BEFORE_BACKDATE,
  RELAY_CIPHERSUITE,
  type MlsContext,
} from './context.js';

/** What the engine needs of an identity; identity.ts's Identity satisfies it structurally. */
export interface SigningIdentity {
  readonly userId: Uint8Array;
  /** 32-byte Ed25519 seed (RFC 8032 private key). */
  readonly signingSeed: Uint8Array;
  readonly signingPublic: Uint8Array;
}

export interface GeneratedKeyPackage {
  /** MLSMessage(mls_key_package) bytes, for the KeyBundle. */
  readonly keyPackage: Uint8Array;
  /** Our own encoding of the private keys, for storage (secret). */
  readonly privateKeyPackage: Uint8Array;
  /** KeyPackageRef (RFC 9420 §5.2): the id a Welcome names it by. */
  readonly ref: Uint8Array;
  readonly notAfter: number;
}

export interface VerifiedKeyPackage {
  readonly identityKey: Uint8Array;
  readonly credentialIdentity: Uint8Array;
  readonly userId: Uint8Array;
  readonly ref: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Suite 0x0001 only, Basic credentials only, no GREASE (ts-mls picks GREASE values at random). */
export function relayCapabilities(): Capabilities {
  return {
    versions: ['mls10'],
    ciphersuites: [RELAY_CIPHERSUITE],
    extensions: [],
    proposals: [],
    credentials: ['basic'],
  };
}

export function checkIdentity(identity: SigningIdentity): void {
  if (identity.signingSeed.length !== 32) throw new ArgumentError('signing seed must be 32 bytes');
  if (identity.signingPublic.length !== 32) throw new ArgumentError('signing key must be 32 bytes');
  if (!equalBytes(userIdFromKey(identity.signingPublic), identity.userId)) {
    throw new ArgumentError('user id does not derive from the signing key');
  }
}

export async function generateKeyPackage(
  ctx: MlsContext,
  identity: SigningIdentity,
  now: number,
): Promise<GeneratedKeyPackage> {
  checkIdentity(identity);
  const { publicPackage, privatePackage } = await newKeyPackage(ctx, identity, now);
  const notAfter = Number(publicPackage.leafNode.lifetime.notAfter);
  return {
    keyPackage: encodeKeyPackageMessage(publicPackage),
    privateKeyPackage: encodePrivateKeyPackage(privatePackage),
    ref: await makeKeyPackageRef(publicPackage, ctx.cipherSuite.hash),
    notAfter,
  };
}

/** Internal: a ts-mls KeyPackage pair for `identity`, valid from now − 1 h to now + 28 days. */
export async function newKeyPackage(
  ctx: MlsContext,
  identity: SigningIdentity,
  now: number,
): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  if (!Number.isSafeInteger(now) || now < KEY_PACKAGE_NOT_BEFORE_BACKDATE) {
    throw new ArgumentError('now must be unix seconds');
  }
  return generateKeyPackageWithKey(
    { credentialType: 'basic', identity: credentialIdentityOf(identity.userId) },
    relayCapabilities(),
    {
      notBefore: BigInt(now - KEY_PACKAGE_NOT_BEFORE_BACKDATE),
      notAfter: BigInt(now + KEY_PACKAGE_LIFETIME),
    },
    [],
    { signKey: identity.signingSeed, publicKey: identity.signingPublic },
    ctx.cipherSuite,
  );
}

export function encodeKeyPackageMessage(kp: KeyPackage): Uint8Array {
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp });
}

/** Parses MLSMessage(mls_key_package) bytes with no trailing data; no cryptographic checks. */
export function decodeKeyPackageMessage(bytes: Uint8Array): KeyPackage {
  let decoded;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (e) {
    throw new CodecError('KeyPackage message does not decode', { cause: e });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new CodecError('KeyPackage message does not decode');
  }
  const [msg] = decoded;
  if (msg.wireformat !== 'mls_key_package') throw new CodecError('not a KeyPackage message');
  if (msg.version !== 'mls10') throw new CodecError('unsupported MLS version');
  return msg.keyPackage;
}

/**
 * RFC 9420 §10.1 checks on a received KeyPackage plus PROTOCOL.md §2/§4: suite 0x0001, both
 * signatures, init key ≠ encryption key, lifetime current within ±10 min, Basic credential whose
 * identity derives from the signature key. Throws VerificationError (CodecError for bad bytes).
 */
export async function verifyKeyPackage(
  ctx: MlsContext,
  bytes: Uint8Array,
  now: number,
): Promise<VerifiedKeyPackage> {
  const kp = decodeKeyPackageMessage(bytes);
  await checkKeyPackage(ctx, kp, now);
  const leaf = kp.leafNode;
  const identity = leaf.credential.credentialType === 'basic' ? leaf.credential.identity : undefined;
  if (identity === undefined) throw new VerificationError('KeyPackage credential is not Basic');
  return {
    identityKey: leaf.signaturePublicKey,
    credentialIdentity: identity,
    userId: userIdFromKey(leaf.signaturePublicKey),
    ref: await makeKeyPackageRef(kp, ctx.cipherSuite.hash),
    notBefore: Number(leaf.lifetime.notBefore),
    notAfter: Number(leaf.lifetime.notAfter),
  };
}

/** PROTOCOL.md §4: not_before = now − 1 h, not_after = now + 28 days, plus the tolerated skew. */
const MAX_TOTAL_LIFETIME = BigInt(KEY_PACKAGE_NOT_BEFORE_BACKDATE + KEY_PACKAGE_LIFETIME + CLOCK_SKEW);

export async function checkKeyPackage(ctx: MlsContext, kp: KeyPackage, now: number): Promise<void> {
  if (kp.version !== 'mls10') throw new VerificationError('KeyPackage version is not mls10');
  if (kp.cipherSuite !== RELAY_CIPHERSUITE) {
    throw new VerificationError('KeyPackage cipher suite is not 0x0001');
  }
  const leaf = kp.leafNode;
  if (leaf.leafNodeSource !== 'key_package') {
    throw new VerificationError('KeyPackage leaf node source is not key_package');
  }
  if (!credentialIsValid(leaf.credential, leaf.signaturePublicKey)) {
    throw new VerificationError('KeyPackage credential does not derive from its signature key');
  }
  // RFC 9420 §10.1: the leaf's capabilities must cover the suite and its own credential type.
  if (!leaf.capabilities.ciphersuites.includes(RELAY_CIPHERSUITE)) {
    throw new VerificationError('KeyPackage capabilities omit suite 0x0001');
  }
  if (!leaf.capabilities.credentials.includes('basic')) {
    throw new VerificationError('KeyPackage capabilities omit Basic credentials');
  }
  const t = BigInt(now);
  const skew = BigInt(CLOCK_SKEW);
  if (leaf.lifetime.notBefore > t + skew || leaf.lifetime.notAfter < t - skew) {
    throw new VerificationError('KeyPackage lifetime is not current');
  }
  // A current but unbounded lifetime would keep a leaked init key usable for ever.
  const total = leaf.lifetime.notAfter - leaf.lifetime.notBefore;
  if (total < 0n || total > MAX_TOTAL_LIFETIME) {
    throw new VerificationError(`KeyPackage total lifetime ${total} s is outside 0..${MAX_TOTAL_LIFETIME} s`);
  }
  if (equalBytes(kp.initKey, leaf.hpkePublicKey)) {
    throw new VerificationError('KeyPackage init key equals its encryption key');
  }
  // RFC 9420 §7.2 (LeafNode signature) and §10 (KeyPackage signature), both by the leaf's key.
  if (!(await verifies(() => verifyLeafNodeSignatureKeyPackage(leaf, ctx.cipherSuite.signature)))) {
    throw new VerificationError('KeyPackage leaf node signature does not verify');
  }
  if (!(await verifies(() => verifyKeyPackageSignature(kp, ctx.cipherSuite.signature)))) {
    throw new VerificationError('KeyPackage signature does not verify');
  }
}

/**
 * A signature check on network input: a provider that throws on malformed keys or signatures
 * (ts-mls's default provider does, through WebCrypto) counts as "does not verify".
 */
async function verifies(check: () => Promise<boolean>): Promise<boolean> {
  try {
    return await check();
  } catch {
    return false;
  }
}

/** The interface the KeyBundle module expects. */
export interface KeyPackageVerifier {
  verifyKeyPackage(
    keyPackage: Uint8Array,
    now: number,
  ): Promise<{ identityKey: Uint8Array; credentialIdentity: Uint8Array }>;
}

export function keyPackageVerifier(ctx: MlsContext): KeyPackageVerifier {
  return {
    verifyKeyPackage: (keyPackage, now) => verifyKeyPackage(ctx, keyPackage, now),
  };
}

// Private KeyPackage storage format: version byte, then three length-prefixed keys
// (init, leaf encryption, signature). Not an MLS structure; only this module reads it.
const PRIVATE_KP_VERSION = 1;

export function encodePrivateKeyPackage(p: PrivateKeyPackage): Uint8Array {
  const parts = [p.initPrivateKey, p.hpkePrivateKey, p.signaturePrivateKey];
  let length = 1;
  for (const part of parts) {
    if (part.length > 255) throw new ArgumentError('private key too long');
    length += 1 + part.length;
  }
  const out = new Uint8Array(length);
  out[0] = PRIVATE_KP_VERSION;
  let offset = 1;
  for (const part of parts) {
    out[offset] = part.length;
    out.set(part, offset + 1);
    offset += 1 + part.length;
  }
  return out;
}

export function decodePrivateKeyPackage(bytes: Uint8Array): PrivateKeyPackage {
  if (bytes[0] !== PRIVATE_KP_VERSION) throw new CodecError('unknown private KeyPackage format');
  const parts: Uint8Array[] = [];
  let offset = 1;
  for (let i = 0; i < 3; i++) {
    const len = bytes[offset];
    if (len === undefined || offset + 1 + len > bytes.length) {
      throw new CodecError('truncated private KeyPackage');
    }
    parts.push(bytes.slice(offset + 1, offset + 1 + len));
    offset += 1 + len;
  }
  if (offset !== bytes.length) throw new CodecError('trailing bytes after private KeyPackage');
  const [initPrivateKey, hpkePrivateKey, signaturePrivateKey] = parts as [Uint8Array, Uint8Array, Uint8Array];
  return { initPrivateKey, hpkePrivateKey, signaturePrivateKey };
}
