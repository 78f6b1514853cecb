import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { defaultCryptoProvider, getCiphersuiteFromName } from 'ts-mls';
import type { CiphersuiteImpl } from 'ts-mls';
import { refhash } from 'ts-mls/crypto/hash.js';
import { decryptWithLabel } from 'ts-mls/crypto/hpke.js';
import { deriveSecret, deriveTreeSecret, expandWithLabel } from 'ts-mls/crypto/kdf.js';
import { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js';
import { fromHex, toHex } from '../../framework/relay/bytes.js';
import { createNodeCryptoProvider } from '../../framework/relay/mls/provider-node.js';
import { RELAY_CIPHERSUITE } from '../../framework/relay/mls/context.js';

const suite = getCiphersuiteFromName(RELAY_CIPHERSUITE);
let nodeCs: CiphersuiteImpl;
let defaultCs: CiphersuiteImpl;

beforeAll(async () => {
  nodeCs = await createNodeCryptoProvider().getCiphersuiteImpl(suite);
  defaultCs = await defaultCryptoProvider.getCiphersuiteImpl(suite);
});

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const RUNS = { numRuns: 60 };

describe('node:crypto provider agrees with the default provider on random inputs', () => {
  test('SHA-256 digest', async () => {
    await fc.assert(
      fc.asyncProperty(bytes(0, 300), async (data) => {
        expect(await nodeCs.hash.digest(data)).toEqual(await defaultCs.hash.digest(data));
      }),
      RUNS,
    );
  });

  // WebCrypto refuses empty HMAC keys; MLS MAC keys are always Nh = 32 bytes.
  test('HMAC-SHA256 mac and verifyMac', async () => {
    await fc.assert(
      fc.asyncProperty(bytes(1, 80), bytes(0, 300), async (key, data) => {
        const mac = await nodeCs.hash.mac(key, data);
        expect(mac).toEqual(await defaultCs.hash.mac(key, data));
        expect(await nodeCs.hash.verifyMac(key, mac, data)).toBe(true);
        const bad = mac.slice();
        bad[0]! ^= 1;
        expect(await nodeCs.hash.verifyMac(key, bad, data)).toBe(false);
        expect(await nodeCs.hash.verifyMac(key, mac.subarray(0, 31), data)).toBe(false);
      }),
      RUNS,
    );
  });

  // @hpke/core only takes salts of 0 or Nh bytes, the only sizes MLS uses (RFC 9420 §8).
  test('HKDF extract and expand', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(bytes(0, 0), bytes(32, 32)),
        bytes(0, 64),
        bytes(0, 100),
        fc.integer({ min: 1, max: 200 }),
        async (salt, ikm, info, len) => {
          const prkNode = await nodeCs.kdf.extract(salt, ikm);
          expect(prkNode).toEqual(await defaultCs.kdf.extract(salt, ikm));
          expect(await nodeCs.kdf.expand(prkNode, info, len)).toEqual(
            await defaultCs.kdf.expand(prkNode, info, len),
          );
        },
      ),
      RUNS,
    );
    expect(nodeCs.kdf.size).toBe(defaultCs.kdf.size);
  });

  test('AES-128-GCM: same ciphertext, cross-decryption, tamper detection', async () => {
    await fc.assert(
      fc.asyncProperty(
        bytes(16, 16),
        bytes(12, 12),
        bytes(0, 40),
        bytes(0, 300),
        async (key, nonce, aad, pt) => {
          const ct = await nodeCs.hpke.encryptAead(key, nonce, aad, pt);
          expect(ct).toEqual(await defaultCs.hpke.encryptAead(key, nonce, aad, pt));
          expect(await defaultCs.hpke.decryptAead(key, nonce, aad, ct)).toEqual(pt);
          expect(await nodeCs.hpke.decryptAead(key, nonce, aad, ct)).toEqual(pt);
          const bad = ct.slice();
          bad[bad.length - 1]! ^= 1;
          await expect(nodeCs.hpke.decryptAead(key, nonce, aad, bad)).rejects.toThrow();
          const otherAad = new Uint8Array([...aad, 1]);
          await expect(nodeCs.hpke.decryptAead(key, nonce, otherAad, ct)).rejects.toThrow();
        },
      ),
      RUNS,
    );
  });

  test('Ed25519: node signatures verify under default and the reverse; 32-byte seeds and PKCS#8 keys', async () => {
    await fc.assert(
      fc.asyncProperty(bytes(0, 300), async (msg) => {
        const nodeKeys = await nodeCs.signature.keygen();
        const defaultKeys = await defaultCs.signature.keygen();
        const sigNode = await nodeCs.signature.sign(nodeKeys.signKey, msg);
        expect(await defaultCs.signature.verify(nodeKeys.publicKey, msg, sigNode)).toBe(true);
        // The default provider hands out PKCS#8 keys; ours must accept them.
        const sigFromPkcs8 = await nodeCs.signature.sign(defaultKeys.signKey, msg);
        const sigDefault = await defaultCs.signature.sign(defaultKeys.signKey, msg);
        expect(sigFromPkcs8).toEqual(sigDefault); // RFC 8032 signatures are deterministic
        expect(await nodeCs.signature.verify(defaultKeys.publicKey, msg, sigDefault)).toBe(true);
        const bad = sigDefault.slice();
        bad[5]! ^= 1;
        expect(await nodeCs.signature.verify(defaultKeys.publicKey, msg, bad)).toBe(false);
        expect(await nodeCs.signature.verify(nodeKeys.publicKey, msg, sigDefault)).toBe(false);
      }),
      { numRuns: 25 },
    );
  });

  test('Ed25519 verify returns false (does not throw) on malformed keys and signatures', async () => {
    const { publicKey, signKey } = await nodeCs.signature.keygen();
    const msg = new Uint8Array([1, 2, 3]);
    const sig = await nodeCs.signature.sign(signKey, msg);
    expect(await nodeCs.signature.verify(publicKey.subarray(0, 31), msg, sig)).toBe(false);
    expect(await nodeCs.signature.verify(publicKey, msg, sig.subarray(0, 63))).toBe(false);
    expect(await nodeCs.signature.verify(new Uint8Array(32).fill(0xff), msg, sig)).toBe(false);
  });

  test('random bytes have the requested length and are not shared buffers', () => {
    const a = nodeCs.rng.randomBytes(32);
    const b = nodeCs.rng.randomBytes(32);
    expect(a).toHaveLength(32);
    expect(a).not.toEqual(b);
    expect(a.buffer).not.toBe(b.buffer);
  });

  test('outputs are fresh arrays: wiping one leaves later results intact', async () => {
    const d1 = await nodeCs.hash.digest(new Uint8Array([1]));
    const expected = toHex(d1);
    d1.fill(0);
    expect(toHex(await nodeCs.hash.digest(new Uint8Array([1])))).toBe(expected);
  });
});

interface CryptoBasics {
  derive_secret: { label: string; out: string; secret: string };
  derive_tree_secret: { label: string; out: string; secret: string; generation: number; length: number };
  encrypt_with_label: {
    ciphertext: string;
    context: string;
    kem_output: string;
    label: string;
    plaintext: string;
    priv: string;
  };
  expand_with_label: { context: string; label: string; length: number; out: string; secret: string };
  ref_hash: { label: string; out: string; value: string };
  sign_with_label: { content: string; label: string; priv: string; pub: string; signature: string };
}

const vector = JSON.parse(
  readFileSync(new URL('../vectors/mls-crypto-basics-suite1.json', import.meta.url), 'utf8'),
) as CryptoBasics;

/** The published keys carry a one-byte TLS length prefix; strip it after checking it. */
function key(hex: string): Uint8Array {
  const b = fromHex(hex);
  expect(b[0]).toBe(b.length - 1);
  return b.subarray(1);
}

describe.each([
  ['node', () => nodeCs],
  ['default', () => defaultCs],
])('MLS crypto-basics vectors, suite 1, %s provider', (_name, cs) => {
  test('derive_secret, derive_tree_secret, expand_with_label (RFC 9420 §5.1, §9)', async () => {
    const v = vector;
    expect(toHex(await deriveSecret(fromHex(v.derive_secret.secret), v.derive_secret.label, cs().kdf))).toBe(
      v.derive_secret.out,
    );
    const t = v.derive_tree_secret;
    expect(toHex(await deriveTreeSecret(fromHex(t.secret), t.label, t.generation, t.length, cs().kdf))).toBe(
      t.out,
    );
    const e = v.expand_with_label;
    expect(
      toHex(await expandWithLabel(fromHex(e.secret), e.label, fromHex(e.context), e.length, cs().kdf)),
    ).toBe(e.out);
  });

  test('ref_hash (RFC 9420 §5.2)', async () => {
    const r = vector.ref_hash;
    expect(toHex(await refhash(r.label, fromHex(r.value), cs().hash))).toBe(r.out);
  });

  test('sign_with_label (RFC 9420 §5.1.2): verifies, and our signature is the published one', async () => {
    const s = vector.sign_with_label;
    const pub = key(s.pub);
    const priv = key(s.priv);
    expect(
      await verifyWithLabel(pub, s.label, fromHex(s.content), fromHex(s.signature), cs().signature),
    ).toBe(true);
    expect(toHex(await signWithLabel(priv, s.label, fromHex(s.content), cs().signature))).toBe(s.signature);
    const wrong = fromHex(s.content);
    wrong[0]! ^= 1;
    expect(await verifyWithLabel(pub, s.label, wrong, fromHex(s.signature), cs().signature)).toBe(false);
  });

  test('encrypt_with_label (RFC 9420 §5.1.3): decrypts to the published plaintext', async () => {
    const e = vector.encrypt_with_label;
    const privateKey = await cs().hpke.importPrivateKey(key(e.priv));
    const pt = await decryptWithLabel(
      privateKey,
      e.label,
      fromHex(e.context),
      fromHex(e.kem_output),
      fromHex(e.ciphertext),
      cs().hpke,
    );
    expect(toHex(pt)).toBe(e.plaintext);
  });
});
