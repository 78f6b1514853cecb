/**
 * ts-mls's HPKE interface (RFC 9420 §5.1.3 EncryptWithLabel, Welcome and UpdatePath secrets) for
 * suite 0x0001's DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, on the same node:crypto
 * primitives as sealed sender (seal-node-primitives.ts) with the `hpke` package's protocol logic.
 *
 * Why not ts-mls's default: it runs @hpke/core on WebCrypto, which generates keys with async
 * `subtle.generateKey` jobs and serializes private keys and derives public keys through JWK
 * exports. On Node 20 such an export can deadlock the process against the garbage collection of the
 * job that generated the key (x25519-node.ts); `proposeUpdate` does exactly generate-then-export.
 *
 * ts-mls types keys as WebCrypto CryptoKeys but only ever hands them back to this object, so our
 * X25519Key stands in for them. Failures on received input are ts-mls CryptoErrors, as the default
 * implementation reports them.
 */
import { createHash } from 'node:crypto';
import { CipherSuite } from 'hpke';
import type { Hpke, PrivateKey, PublicKey } from 'ts-mls';
import { CryptoError } from 'ts-mls/mlsError.js';
import {
  AEAD_AES_128_GCM,
  DHKEM_X25519_HKDF_SHA256,
  KDF_HKDF_SHA256,
  X25519Key,
} from '../seal-node-primitives.js';

type Aead = Pick<Hpke, 'encryptAead' | 'decryptAead'>;

function asKey(key: PrivateKey | PublicKey): X25519Key {
  if (!(key instanceof X25519Key)) throw new CryptoError('HPKE key was not made by this provider');
  return key;
}

function fromKey<T extends PrivateKey | PublicKey>(key: X25519Key): T {
  return key as unknown as T;
}

/** `what` fails on input that came from a peer: reported as a CryptoError with its cause. */
async function received<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw new CryptoError(`${what}: ${String(e)}`);
  }
}

/** Private keys ts-mls imported lately, so that the same bytes are parsed once. */
const PRIVATE_KEY_CACHE_SIZE = 64;

/**
 * Imported private keys by their bytes, least recently used first out. ts-mls imports a key for
 * each Welcome it joins with (the key package's init key) and each commit path it decrypts. The
 * bundle's key package is replaced once consumed (own-bundle.ts), but first contacts that fetched
 * it before then all arrive on it, and each would import the same init key again.
 * Looked up by a SHA-256 of the bytes, so no secret sits in a map key string, and a hit is the key
 * made from the same bytes. X25519Key is immutable, so sharing one between callers is safe.
 */
class PrivateKeyCache {
  private readonly keys = new Map<string, X25519Key>();

  async get(bytes: Uint8Array, make: () => Promise<X25519Key>): Promise<X25519Key> {
    const id = createHash('sha256').update(bytes).digest('base64');
    const hit = this.keys.get(id);
    if (hit !== undefined) {
      this.keys.delete(id);
      this.keys.set(id, hit);
      return hit;
    }
    const key = await make();
    this.keys.set(id, key);
    if (this.keys.size > PRIVATE_KEY_CACHE_SIZE) this.keys.delete(this.keys.keys().next().value!);
    return key;
  }
}

/** Suite 0x0001's HPKE; `aead` is the provider's AES-GCM, which ts-mls also uses for messages. */
export function createNodeHpke(aead: Aead): Hpke {
  const suite = new CipherSuite(DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_128_GCM);
  const privateKeys = new PrivateKeyCache();
  const pair = (kp: { privateKey: X25519Key; publicKey: X25519Key }) => ({
    privateKey: fromKey<PrivateKey>(kp.privateKey),
    publicKey: fromKey<PublicKey>(kp.publicKey),
  });
  return {
    async seal(publicKey, plaintext, info, aad) {
      const sealed = await suite.Seal(asKey(publicKey), plaintext, { info, aad });
      return { ct: sealed.ciphertext, enc: sealed.encapsulatedSecret };
    },
    open(privateKey, kemOutput, ciphertext, info, aad) {
      return received('HPKE open', () => suite.Open(asKey(privateKey), kemOutput, ciphertext, { info, aad }));
    },
    async exportSecret(publicKey, exporterContext, length, info) {
      const sender = await suite.SetupSender(asKey(publicKey), { info });
      return { enc: sender.encapsulatedSecret, secret: await sender.ctx.Export(exporterContext, length) };
    },
    importSecret(privateKey, exporterContext, kemOutput, length, info) {
      return received('HPKE import secret', async () => {
        const recipient = await suite.SetupRecipient(asKey(privateKey), kemOutput, { info });
        return recipient.Export(exporterContext, length);
      });
    },
    importPrivateKey(k) {
      return received('HPKE private key', async () =>
        fromKey(await privateKeys.get(k, () => suite.DeserializePrivateKey(k, true))),
      );
    },
    importPublicKey(k) {
      return received('HPKE public key', async () => fromKey(await suite.DeserializePublicKey(k)));
    },
    exportPublicKey: (k) => suite.SerializePublicKey(asKey(k)),
    exportPrivateKey: (k) => suite.SerializePrivateKey(asKey(k)),
    encryptAead: aead.encryptAead,
    decryptAead: aead.decryptAead,
    async deriveKeyPair(ikm) {
      return pair(await suite.DeriveKeyPair(ikm, true));
    },
    async generateKeyPair() {
      return pair(await suite.GenerateKeyPair(true));
    },
    keyLength: suite.AEAD.Nk,
    nonceLength: suite.AEAD.Nn,
  };
}
