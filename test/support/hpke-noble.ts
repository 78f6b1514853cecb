/**
 * A second, independent HPKE base-mode implementation for tests, written straight from RFC 9180
 * on top of noble primitives (pure JS, no WebCrypto), so a bug shared with @hpke/core or with Node's
 * WebCrypto cannot hide. Only DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 + AES-GCM, single-shot and
 * multi-message sealing, and the exporter. Not for production use: it keeps no secrets tidy.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { gcm } from '@noble/ciphers/aes.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** I2OSP (RFC 8017 §4.1), big-endian, as RFC 9180 §3 uses it. */
function i2osp(value: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = BigInt(value);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export const KEM_X25519_SHA256 = 0x0020;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES128GCM = 0x0001;
export const AEAD_AES256GCM = 0x0002;

const NSECRET = 32; // Nsecret for DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1
const NSK = 32;
const NH = 32; // Nh of HKDF-SHA256, §7.2
const NN = 12; // Nn of AES-GCM, §7.3
const MODE_BASE = 0x00; // §5

const HPKE_V1 = enc('HPKE-v1');
const KEM_SUITE_ID = concat(enc('KEM'), i2osp(KEM_X25519_SHA256, 2)); // §4.1

function hpkeSuiteId(aeadId: number): Uint8Array {
  // §5.1: suite_id = "HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2)
  return concat(enc('HPKE'), i2osp(KEM_X25519_SHA256, 2), i2osp(KDF_HKDF_SHA256, 2), i2osp(aeadId, 2));
}

function nk(aeadId: number): number {
  if (aeadId === AEAD_AES128GCM) return 16;
  if (aeadId === AEAD_AES256GCM) return 32;
  throw new Error(`unsupported AEAD ${aeadId}`);
}

/** §4: LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm). */
function labeledExtract(suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return extract(sha256, concat(HPKE_V1, suiteId, enc(label), ikm), salt);
}

/** §4: LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L). */
function labeledExpand(
  suiteId: Uint8Array,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return expand(sha256, prk, concat(i2osp(length, 2), HPKE_V1, suiteId, enc(label), info), length);
}

const EMPTY = new Uint8Array(0);

/** §7.1.3 DeriveKeyPair for X25519: sk = LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", Nsk). */
export function deriveKeyPair(ikm: Uint8Array): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const dkpPrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'dkp_prk', ikm);
  const secretKey = labeledExpand(KEM_SUITE_ID, dkpPrk, 'sk', EMPTY, NSK);
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

/** §4.1 DH with the all-zero check of §7.1.4. */
function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = x25519.getSharedSecret(secretKey, publicKey);
  } catch {
    throw new Error('DH failed (low-order point)');
  }
  if (out.every((b) => b === 0)) throw new Error('DH output is all zero');
  return out;
}

/** §4.1 ExtractAndExpand. */
function extractAndExpand(dhOut: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const eaePrk = labeledExtract(KEM_SUITE_ID, EMPTY, 'eae_prk', dhOut);
  return labeledExpand(KEM_SUITE_ID, eaePrk, 'shared_secret', kemContext, NSECRET);
}

/** §4.1 Encap with the ephemeral secret given, so the caller controls determinism. */
export function encap(pkR: Uint8Array, skE: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array } {
  const pkE = x25519.getPublicKey(skE);
  const sharedSecret = extractAndExpand(dh(skE, pkR), concat(pkE, pkR));
  return { sharedSecret, enc: pkE };
}

/** §4.1 Decap. */
export function decap(encapsulated: Uint8Array, skR: Uint8Array): Uint8Array {
  if (encapsulated.length !== 32) throw new Error('enc must be 32 bytes');
  const pkR = x25519.getPublicKey(skR);
  return extractAndExpand(dh(skR, encapsulated), concat(encapsulated, pkR));
}

export interface KeySchedule {
  keyScheduleContext: Uint8Array;
  secret: Uint8Array;
  key: Uint8Array;
  baseNonce: Uint8Array;
  exporterSecret: Uint8Array;
}

/** §5.1 KeySchedule in base mode (psk and psk_id empty). */
export function keySchedule(aeadId: number, sharedSecret: Uint8Array, info: Uint8Array): KeySchedule {
  const suiteId = hpkeSuiteId(aeadId);
  const pskIdHash = labeledExtract(suiteId, EMPTY, 'psk_id_hash', EMPTY);
  const infoHash = labeledExtract(suiteId, EMPTY, 'info_hash', info);
  const keyScheduleContext = concat(i2osp(MODE_BASE, 1), pskIdHash, infoHash);
  const secret = labeledExtract(suiteId, sharedSecret, 'secret', EMPTY);
  return {
    keyScheduleContext,
    secret,
    key: labeledExpand(suiteId, secret, 'key', keyScheduleContext, nk(aeadId)),
    baseNonce: labeledExpand(suiteId, secret, 'base_nonce', keyScheduleContext, NN),
    exporterSecret: labeledExpand(suiteId, secret, 'exp', keyScheduleContext, NH),
  };
}

/** §5.2 ComputeNonce: base_nonce XOR I2OSP(seq, Nn). */
export function computeNonce(baseNonce: Uint8Array, seq: number): Uint8Array {
  const seqBytes = i2osp(seq, NN);
  return baseNonce.map((b, i) => b ^ seqBytes[i]!);
}

export function aeadSeal(ks: KeySchedule, seq: number, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  return gcm(ks.key, computeNonce(ks.baseNonce, seq), aad).encrypt(pt);
}

export function aeadOpen(ks: KeySchedule, seq: number, aad: Uint8Array, ct: Uint8Array): Uint8Array {
  return gcm(ks.key, computeNonce(ks.baseNonce, seq), aad).decrypt(ct);
}

/** §5.3 Export. */
export function exportSecret(
  aeadId: number,
  ks: KeySchedule,
  exporterContext: Uint8Array,
  length: number,
): Uint8Array {
  return labeledExpand(hpkeSuiteId(aeadId), ks.exporterSecret, 'sec', exporterContext, length);
}

/** §6.1 single-shot Seal with a deterministic ephemeral key from ikmE. */
export function sealBase(args: {
  aeadId: number;
  pkR: Uint8Array;
  info: Uint8Array;
  aad: Uint8Array;
  plaintext: Uint8Array;
  ikmE: Uint8Array;
}): { enc: Uint8Array; ciphertext: Uint8Array } {
  const { secretKey } = deriveKeyPair(args.ikmE);
  const { sharedSecret, enc: encapsulated } = encap(args.pkR, secretKey);
  const ks = keySchedule(args.aeadId, sharedSecret, args.info);
  return { enc: encapsulated, ciphertext: aeadSeal(ks, 0, args.aad, args.plaintext) };
}

/** §6.1 single-shot Open. */
export function openBase(args: {
  aeadId: number;
  skR: Uint8Array;
  enc: Uint8Array;
  info: Uint8Array;
  aad: Uint8Array;
  ciphertext: Uint8Array;
}): Uint8Array {
  const ks = keySchedule(args.aeadId, decap(args.enc, args.skR), args.info);
  return aeadOpen(ks, 0, args.aad, args.ciphertext);
}
