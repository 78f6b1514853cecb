/**
 * A ts-mls CryptoProvider whose hot-path primitives run on node:crypto (OpenSSL).
 *
 * Every application message costs one Ed25519 signature, a few HKDF-Expand calls (RFC 9420 §9.1
 * secret tree), two AES-GCM operations (content and sender data, RFC 9420 §6.3) and, on receipt,
 * one Ed25519 verification. ts-mls's default provider routes these through WebCrypto with a fresh
 * key import per call; doing them on node:crypto directly cuts a round trip several-fold.
 *
 * Only suite 0x0001 (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519) is accelerated. Its HPKE (RFC
 * 9180, used for Welcome and UpdatePath secrets) is hpke-node.ts rather than ts-mls's WebCrypto one,
 * whose async key generation and JWK exports can deadlock Node 20 (x25519-node.ts explains); its
 * AEAD entry points are ours too, since ts-mls also uses them for message protection.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  randomFillSync,
  sign as nodeSign,
  timingSafeEqual,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { defaultCryptoProvider } from 'ts-mls';
import type { Ciphersuite, CiphersuiteImpl, CryptoProvider, Hash, Hpke, Kdf, Rng, Signature } from 'ts-mls';
import { CryptoError } from 'ts-mls/mlsError.js';
import { importOkpPrivate, importOkpPublic } from '../okp-import.js';
import { createNodeHpke } from './hpke-node.js';

const SUITE_1 = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';
const SHA256_LEN = 32;
const GCM_TAG_LEN = 16;

/** RFC 8410 §7 PKCS#8 of an Ed25519 key: a 16-byte prefix and the 32-byte seed. */
const PKCS8_ED25519_LEN = 48;

/** Fresh, unpooled copy: ts-mls wipes arrays in place, which must never touch a shared Buffer pool. */
function own(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf);
}

/**
 * Bounded cache of imported keys. Each signature or verification would otherwise parse DER and
 * build an OpenSSL key object again; a conversation uses the same two keys for every message.
 * Keys are looked up by their bytes, so a cache hit cannot return a different key.
 */
class KeyCache {
  private readonly map = new Map<string, KeyObject>();
  constructor(private readonly limit: number) {}

  get(raw: Uint8Array, make: () => KeyObject): KeyObject {
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
    const hit = this.map.get(id);
    if (hit !== undefined) {
      // Refresh recency so the working set survives eviction.
      this.map.delete(id);
      this.map.set(id, hit);
      return hit;
    }
    const key = make();
    this.map.set(id, key);
    if (this.map.size > this.limit) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    return key;
  }
}

function ed25519PrivateKey(signKey: Uint8Array): KeyObject {
  // ts-mls's default provider hands out PKCS#8 (48 bytes); identities here carry 32-byte seeds.
  if (signKey.length === 32) return importOkpPrivate('Ed25519', signKey);
  if (signKey.length === PKCS8_ED25519_LEN) {
    return createPrivateKey({ key: Buffer.from(signKey), format: 'der', type: 'pkcs8' });
  }
  throw new CryptoError('Ed25519 signing key must be a 32-byte seed or 48-byte PKCS#8');
}

function makeSignature(cacheSize: number): Signature {
  const privateKeys = new KeyCache(cacheSize);
  const publicKeys = new KeyCache(cacheSize);
  return {
    async sign(signKey, message) {
      const key = privateKeys.get(signKey, () => ed25519PrivateKey(signKey));
      return own(nodeSign(null, message, key));
    },
    async verify(publicKey, message, signature) {
      // RFC 8032 §5.1.7: fixed sizes; anything else is simply not a valid signature.
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      try {
        const key = publicKeys.get(publicKey, () => importOkpPublic('Ed25519', publicKey));
        return nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
    },
    async keygen() {
      // A random seed, imported: nothing is ever exported from a generated key (x25519-node.ts).
      const seed = randomFillSync(new Uint8Array(32));
      const spki = createPublicKey(ed25519PrivateKey(seed)).export({ format: 'der', type: 'spki' });
      return { signKey: seed, publicKey: own(spki.subarray(spki.length - 32)) };
    },
  };
}

const sha256Hash: Hash = {
  async digest(data) {
    return own(createHash('sha256').update(data).digest());
  },
  async mac(key, data) {
    return own(createHmac('sha256', key).update(data).digest());
  },
  async verifyMac(key, mac, data) {
    const expected = createHmac('sha256', key).update(data).digest();
    return mac.length === expected.length && timingSafeEqual(expected, mac);
  },
};

const hkdfSha256: Kdf = {
  // RFC 5869 §2.2. An empty salt is the same HMAC key as HashLen zero bytes (HMAC zero-pads keys).
  async extract(salt, ikm) {
    return own(createHmac('sha256', salt).update(ikm).digest());
  },
  // RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) || info || i).
  async expand(prk, info, len) {
    if (len > 255 * SHA256_LEN) throw new CryptoError('HKDF-Expand length too large');
    const out = new Uint8Array(len);
    let previous: Uint8Array = new Uint8Array(0);
    let filled = 0;
    for (let i = 1; filled < len; i++) {
      const block = createHmac('sha256', prk).update(previous).update(info).update(Uint8Array.of(i)).digest();
      out.set(block.subarray(0, Math.min(block.length, len - filled)), filled);
      filled += block.length;
      previous = block;
    }
    return out;
  },
  size: SHA256_LEN,
};

// AES-128-GCM as RFC 9420 uses it via RFC 9180's AEAD interface (RFC 5116): 16-byte key, 12-byte
// nonce, output = ciphertext || 16-byte tag.
async function aesGcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array | undefined,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const cipher = createCipheriv(gcmName(key), key, nonce, { authTagLength: GCM_TAG_LEN });
  if (aad !== undefined && aad.length > 0) cipher.setAAD(aad);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(head.length + tail.length + tag.length);
  out.set(head, 0);
  out.set(tail, head.length);
  out.set(tag, head.length + tail.length);
  return out;
}

async function aesGcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array | undefined,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  if (ciphertext.length < GCM_TAG_LEN) throw new CryptoError('AES-GCM ciphertext too short');
  try {
    const decipher = createDecipheriv(gcmName(key), key, nonce, { authTagLength: GCM_TAG_LEN });
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - GCM_TAG_LEN));
    if (aad !== undefined && aad.length > 0) decipher.setAAD(aad);
    const head = decipher.update(ciphertext.subarray(0, ciphertext.length - GCM_TAG_LEN));
    const tail = decipher.final();
    const out = new Uint8Array(head.length + tail.length);
    out.set(head, 0);
    out.set(tail, head.length);
    return out;
  } catch (e) {
    throw new CryptoError(`AES-GCM open failed: ${String(e)}`);
  }
}

function gcmName(key: Uint8Array): 'aes-128-gcm' | 'aes-256-gcm' {
  if (key.length === 16) return 'aes-128-gcm';
  if (key.length === 32) return 'aes-256-gcm';
  throw new CryptoError('AES-GCM key must be 16 or 32 bytes');
}

const nodeRng: Rng = {
  randomBytes(n) {
    return randomFillSync(new Uint8Array(n));
  },
};

export interface NodeCryptoProviderOptions {
  /** Imported Ed25519 keys kept per direction (sign / verify). Default 256. */
  readonly keyCacheSize?: number;
}

/**
 * A CryptoProvider for ts-mls: node:crypto for suite 0x0001's signature, hash, HMAC, HKDF, AES-GCM
 * and randomness; everything else (and every other suite) from ts-mls's default provider.
 */
export function createNodeCryptoProvider(opts: NodeCryptoProviderOptions = {}): CryptoProvider {
  const cacheSize = opts.keyCacheSize ?? 256;
  return {
    async getCiphersuiteImpl(cs: Ciphersuite): Promise<CiphersuiteImpl> {
      const base = await defaultCryptoProvider.getCiphersuiteImpl(cs);
      if (cs.name !== SUITE_1) return base;
      const hpke: Hpke = createNodeHpke({ encryptAead: aesGcmEncrypt, decryptAead: aesGcmDecrypt });
      return {
        name: cs.name,
        hash: sha256Hash,
        kdf: hkdfSha256,
        signature: makeSignature(cacheSize),
        hpke,
        rng: nodeRng,
      };
    },
  };
}
