/**
 * node:crypto implementations of the three HPKE building blocks the `hpke` package lets a caller
 * plug in (its KEM, KDF and AEAD interfaces): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-GCM.
 *
 * Why not the package's own WebCrypto suite: every WebCrypto call is a promise that hops through
 * Node's job queue, and one seal makes over twenty of them (key import per HMAC, per AES key, per
 * DH). The synchronous node:crypto calls below run the same OpenSSL code without the hops. The HPKE
 * protocol logic itself (RFC 9180 §5.1 key schedule, §4 LabeledExtract/LabeledExpand, §5.2 nonce
 * and sequence handling) stays in `hpke`; this file only supplies primitives, plus the DHKEM
 * construction of §4.1 because the KEM interface is where HPKE puts it. The X25519 keys themselves
 * (import, generation, DH, and why none of it uses JWK) are in x25519-node.ts.
 *
 * Errors: a DH that yields the all-zero value and an AEAD tag that does not verify are
 * VerificationError (the inputs came off the network); misuse of these objects is ArgumentError.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import {
  I2OSP,
  LabeledExpand,
  LabeledExtract,
  concat,
  encode,
  type AEAD,
  type AEADFactory,
  type KDF,
  type KDFFactory,
  type KEM,
  type KEMFactory,
  type Key,
  type KeyPair,
} from 'hpke';
import { ArgumentError, VerificationError } from './errors.js';
import { X25519Key, x25519Dh } from './x25519-node.js';

export { X25519Key } from './x25519-node.js';

/** Fresh, unshared bytes: node:crypto may hand back views into its pooled slab. */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

// ---------------------------------------------------------------------------------------------
// KDF: HKDF-SHA256 (RFC 9180 §7.2, id 0x0001; RFC 5869)
// ---------------------------------------------------------------------------------------------

const HKDF_SHA256_NH = 32;

/**
 * HKDF-Extract. An empty salt is passed straight to HMAC: RFC 5869 §2.2 substitutes HashLen zero
 * bytes, and HMAC zero-pads its key to the block size, so both give the same PRK. hkdfSync is not
 * usable because it fuses Extract and Expand, and HPKE needs them separately (RFC 9180 §4).
 */
function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return own(createHmac('sha256', salt).update(ikm).digest());
}

/** HKDF-Expand, RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) || info || i), truncated to L. */
function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > 255 * HKDF_SHA256_NH) {
    throw new ArgumentError(`HKDF-SHA256 output length must be at most ${255 * HKDF_SHA256_NH}`);
  }
  if (prk.length < HKDF_SHA256_NH) throw new ArgumentError('HKDF PRK shorter than Nh');
  const out = new Uint8Array(Math.ceil(length / HKDF_SHA256_NH) * HKDF_SHA256_NH);
  let previous = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++, at += HKDF_SHA256_NH) {
    const block = createHmac('sha256', prk).update(previous).update(info).update(Uint8Array.of(i)).digest();
    out.set(block, at);
    previous = out.subarray(at, at + HKDF_SHA256_NH);
  }
  return out.slice(0, length);
}

/** Two-stage KDF (RFC 9180 §4): `hpke` calls only Extract and Expand for stages = 2. */
export const KDF_HKDF_SHA256: KDFFactory = (): KDF => ({
  id: 0x0001,
  type: 'KDF',
  name: 'HKDF-SHA256 (node:crypto)',
  Nh: HKDF_SHA256_NH,
  stages: 2,
  Extract: async (salt, ikm) => hkdfExtract(salt, ikm),
  Expand: async (prk, info, length) => hkdfExpand(prk, info, length),
  Derive: () => Promise.reject(new ArgumentError('HKDF-SHA256 is a two-stage KDF; Derive is not defined')),
});

// ---------------------------------------------------------------------------------------------
// AEAD: AES-128-GCM / AES-256-GCM (RFC 9180 §7.3, ids 0x0001 / 0x0002)
// ---------------------------------------------------------------------------------------------

const GCM_NN = 12;
const GCM_NT = 16;
/** RFC 5116 §5.1 P_MAX for AES-GCM, which the AEAD interface asks implementations to enforce. */
const GCM_P_MAX = 2 ** 36 - 31;

function aesGcm(id: 0x0001 | 0x0002, keyBytes: 16 | 32): AEAD {
  const cipher = keyBytes === 16 ? 'aes-128-gcm' : 'aes-256-gcm';
  return {
    id,
    type: 'AEAD',
    name: `AES-${keyBytes * 8}-GCM (node:crypto)`,
    Nk: keyBytes,
    Nn: GCM_NN,
    Nt: GCM_NT,
    async Seal(key, nonce, aad, pt) {
      if (pt.length > GCM_P_MAX) throw new ArgumentError('plaintext exceeds the AES-GCM P_MAX');
      const c = createCipheriv(cipher, key, nonce, { authTagLength: GCM_NT });
      c.setAAD(aad);
      const body = c.update(pt);
      const tail = c.final();
      const out = new Uint8Array(body.length + tail.length + GCM_NT);
      out.set(body, 0);
      out.set(tail, body.length);
      out.set(c.getAuthTag(), body.length + tail.length);
      return out;
    },
    async Open(key, nonce, aad, ct) {
      if (ct.length < GCM_NT) throw new VerificationError('ciphertext shorter than the AES-GCM tag');
      const d = createDecipheriv(cipher, key, nonce, { authTagLength: GCM_NT });
      d.setAAD(aad);
      d.setAuthTag(ct.subarray(ct.length - GCM_NT));
      const body = d.update(ct.subarray(0, ct.length - GCM_NT));
      let tail: Buffer;
      try {
        tail = d.final();
      } catch (cause) {
        // Nothing decrypted so far leaves this function: `body` is dropped unless the tag verifies.
        throw new VerificationError('AES-GCM tag does not verify', { cause });
      }
      const out = new Uint8Array(body.length + tail.length);
      out.set(body, 0);
      out.set(tail, body.length);
      return out;
    },
  };
}

/** Needed only for the RFC 9180 A.1 test vectors, whose suite is AES-128-GCM. */
export const AEAD_AES_128_GCM: AEADFactory = () => aesGcm(0x0001, 16);
export const AEAD_AES_256_GCM: AEADFactory = () => aesGcm(0x0002, 32);

// ---------------------------------------------------------------------------------------------
// KEM: DHKEM(X25519, HKDF-SHA256) (RFC 9180 §4.1, §7.1, id 0x0020)
// ---------------------------------------------------------------------------------------------

const X25519_N = 32; // Nsecret = Nenc = Npk = Nsk = Ndh (RFC 9180 §7.1)
const KEM_ID = 0x0020;
/** §4.1: the KEM's own labeled KDF calls use suite_id = "KEM" || I2OSP(kem_id, 2). */
const KEM_SUITE_ID = concat(encode('KEM'), I2OSP(KEM_ID, 2));
const LABEL_DKP_PRK = encode('dkp_prk');
const LABEL_SK = encode('sk');
const LABEL_EAE_PRK = encode('eae_prk');
const LABEL_SHARED_SECRET = encode('shared_secret');
const EMPTY = new Uint8Array(0);
const KEM_KDF = KDF_HKDF_SHA256();

function asX25519(key: Key, type: 'public' | 'private'): X25519Key {
  if (!(key instanceof X25519Key) || key.type !== type) {
    throw new ArgumentError(`expected an X25519 ${type} key created by this KEM`);
  }
  return key;
}

/** The public key belonging to a private key, for handing `hpke` a KeyPair so Decap need not. */
export function x25519PublicKeyOf(privateKey: Key): X25519Key {
  return asX25519(privateKey, 'private').publicKey();
}

/** §7.1.3 DeriveKeyPair for X25519: any 32 bytes are a valid scalar (clamping happens in DH). */
async function deriveKeyPair(ikm: Uint8Array, extractable: boolean): Promise<KeyPair<X25519Key>> {
  const dkpPrk = await LabeledExtract(KEM_KDF, KEM_SUITE_ID, EMPTY, LABEL_DKP_PRK, ikm);
  const sk = await LabeledExpand(KEM_KDF, KEM_SUITE_ID, dkpPrk, LABEL_SK, EMPTY, X25519_N);
  const privateKey = X25519Key.fromPrivateBytes(sk, extractable);
  sk.fill(0);
  return { privateKey, publicKey: privateKey.publicKey() };
}

/** §4.1 ExtractAndExpand: shared_secret = LabeledExpand(LabeledExtract("", "eae_prk", dh), ...). */
async function extractAndExpand(dhOut: Uint8Array, kemContext: Uint8Array): Promise<Uint8Array> {
  const eaePrk = await LabeledExtract(KEM_KDF, KEM_SUITE_ID, EMPTY, LABEL_EAE_PRK, dhOut);
  return LabeledExpand(KEM_KDF, KEM_SUITE_ID, eaePrk, LABEL_SHARED_SECRET, kemContext, X25519_N);
}

export interface DhkemX25519Options {
  /**
   * Tests only: Encap derives its ephemeral key with DeriveKeyPair(unsafeIkmE) (§7.1.3, as the
   * RFC 9180 Appendix A vectors do) instead of generating one. Every Encap of such a KEM reuses the
   * same ephemeral key, hence the same AEAD key and nonce for the same recipient and info.
   */
  unsafeIkmE?: Uint8Array;
}

/**
 * A factory for `new CipherSuite(...)`. The `hpke` Encap interface takes no ephemeral input, so a
 * deterministic ephemeral is a property of the KEM instance rather than of a call.
 */
export function dhkemX25519HkdfSha256(options: DhkemX25519Options = {}): KEMFactory<X25519Key> {
  const ikmE = options.unsafeIkmE === undefined ? undefined : own(options.unsafeIkmE);
  if (ikmE !== undefined && ikmE.length < X25519_N) {
    throw new ArgumentError(`ikmE must be at least Nsk = ${X25519_N} bytes (RFC 9180 §7.1.3)`);
  }
  const ephemeral = async (): Promise<{ privateKey: X25519Key; publicBytes: Uint8Array }> => {
    if (ikmE === undefined) return X25519Key.generateEphemeral();
    const { privateKey, publicKey } = await deriveKeyPair(ikmE, false);
    return { privateKey, publicBytes: publicKey.publicBytes };
  };

  return (): KEM<X25519Key> => ({
    id: KEM_ID,
    type: 'KEM',
    name: 'DHKEM(X25519, HKDF-SHA256) (node:crypto)',
    Nsecret: X25519_N,
    Nenc: X25519_N,
    Npk: X25519_N,
    Nsk: X25519_N,
    DeriveKeyPair: deriveKeyPair,
    async GenerateKeyPair(extractable) {
      return X25519Key.generate(extractable);
    },
    async SerializePublicKey(key) {
      return own(asX25519(key, 'public').publicBytes);
    },
    async DeserializePublicKey(key) {
      return X25519Key.fromPublicBytes(key);
    },
    async SerializePrivateKey(key) {
      return asX25519(key, 'private').secretBytes();
    },
    async DeserializePrivateKey(key, extractable) {
      return X25519Key.fromPrivateBytes(key, extractable);
    },
    /** §4.1 Encap: enc = pkEm, kem_context = enc || pkRm. */
    async Encap(pkR) {
      const recipient = asX25519(pkR, 'public');
      const { privateKey: skE, publicBytes: enc } = await ephemeral();
      const dhOut = x25519Dh(skE, recipient);
      const sharedSecret = await extractAndExpand(dhOut, concat(enc, recipient.publicBytes));
      dhOut.fill(0);
      return { shared_secret: sharedSecret, enc };
    },
    /** §4.1 Decap; pkR comes from the caller's KeyPair when it has one, else from skR. */
    async Decap(enc, skR, pkR) {
      const sk = asX25519(skR, 'private');
      const pkBytes = pkR === undefined ? sk.publicBytesOfPrivate() : asX25519(pkR, 'public').publicBytes;
      const dhOut = x25519Dh(sk, X25519Key.fromPublicBytes(enc));
      const sharedSecret = await extractAndExpand(dhOut, concat(enc, pkBytes));
      dhOut.fill(0);
      return sharedSecret;
    },
  });
}

/** The production KEM: a fresh random ephemeral key per Encap. */
export const DHKEM_X25519_HKDF_SHA256: KEMFactory<X25519Key> = dhkemX25519HkdfSha256();
