/** HPKE as the relay seal builds it, against RFC 9180 A.1.1 and RFC 5869: @hpke/core, noble, node:crypto. */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { expand as nobleExpand, extract as nobleExtract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  AEAD_AES_128_GCM as WEBCRYPTO_AEAD_AES_128_GCM,
  CipherSuite as HpkeSuite,
  KDF_HKDF_SHA256 as WEBCRYPTO_KDF_HKDF_SHA256,
  type AEADFactory,
  type KDFFactory,
} from 'hpke';
import fc from 'fast-check';
import { toHex, utf8 } from '../../framework/relay/bytes.js';
import { ArgumentError, VerificationError } from '../../framework/relay/errors.js';
import {
  AEAD_AES_128_GCM,
  AEAD_AES_256_GCM,
  DHKEM_X25519_HKDF_SHA256,
  KDF_HKDF_SHA256,
  dhkemX25519HkdfSha256,
} from '../../framework/relay/seal-node-primitives.js';
import * as noble from '../support/hpke-noble.js';
import a1 from '../vectors/rfc9180-a1.json' with { type: 'json' };
import { h, recipientSealSecret, LOW_ORDER_POINTS } from './seal-vectors.js';

describe('RFC 9180 A.1.1 (X25519, HKDF-SHA256, AES-128-GCM, base mode)', () => {
  const suite = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes128Gcm(),
  });

  test('@hpke/core DeriveKeyPair reproduces skEm/pkEm and skRm/pkRm', async () => {
    for (const [ikm, sk, pk] of [
      [a1.ikmE, a1.skEm, a1.pkEm],
      [a1.ikmR, a1.skRm, a1.pkRm],
    ] as const) {
      const pair = await suite.kem.deriveKeyPair(h(ikm));
      expect(toHex(new Uint8Array(await suite.kem.serializePrivateKey(pair.privateKey)))).toBe(sk);
      expect(toHex(new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey)))).toBe(pk);
    }
  });

  test('@hpke/core sender reproduces enc, every published ciphertext and export', async () => {
    const recipientPublicKey = await suite.kem.deserializePublicKey(h(a1.pkRm));
    const sender = await suite.createSenderContext({ recipientPublicKey, info: h(a1.info), ekm: h(a1.ikmE) });
    expect(toHex(new Uint8Array(sender.enc))).toBe(a1.enc);
    const bySeq = new Map(a1.encryptions.map((e) => [e.seq, e]));
    const pt = h(a1.encryptions[0]!.pt);
    for (let seq = 0; seq <= 256; seq++) {
      const published = bySeq.get(seq);
      // Unpublished sequence numbers still advance the context; their AAD is our own choice.
      const aad = published === undefined ? new Uint8Array(0) : h(published.aad);
      const ct = new Uint8Array(await sender.seal(pt, aad));
      if (published !== undefined) expect(toHex(ct)).toBe(published.ct);
    }
    for (const x of a1.exports) {
      expect(toHex(new Uint8Array(await sender.export(h(x.exporter_context), x.L)))).toBe(x.exported_value);
    }
  });

  test('@hpke/core recipient opens the published seq-0 ciphertext', async () => {
    const recipientKey = await suite.kem.deriveKeyPair(h(a1.ikmR));
    const e0 = a1.encryptions[0]!;
    const pt = await suite.open({ recipientKey, enc: h(a1.enc), info: h(a1.info) }, h(e0.ct), h(e0.aad));
    expect(toHex(new Uint8Array(pt))).toBe(e0.pt);
  });

  test('the noble implementation reproduces every intermediate value', () => {
    const e = noble.deriveKeyPair(h(a1.ikmE));
    expect(toHex(e.secretKey)).toBe(a1.skEm);
    expect(toHex(e.publicKey)).toBe(a1.pkEm);
    const r = noble.deriveKeyPair(h(a1.ikmR));
    expect(toHex(r.secretKey)).toBe(a1.skRm);
    expect(toHex(r.publicKey)).toBe(a1.pkRm);

    const enc = noble.encap(h(a1.pkRm), h(a1.skEm));
    expect(toHex(enc.enc)).toBe(a1.enc);
    expect(toHex(enc.sharedSecret)).toBe(a1.shared_secret);
    expect(toHex(noble.decap(h(a1.enc), h(a1.skRm)))).toBe(a1.shared_secret);

    const ks = noble.keySchedule(noble.AEAD_AES128GCM, enc.sharedSecret, h(a1.info));
    expect(toHex(ks.keyScheduleContext)).toBe(a1.key_schedule_context);
    expect(toHex(ks.secret)).toBe(a1.secret);
    expect(toHex(ks.key)).toBe(a1.key);
    expect(toHex(ks.baseNonce)).toBe(a1.base_nonce);
    expect(toHex(ks.exporterSecret)).toBe(a1.exporter_secret);
    for (const x of a1.encryptions) {
      expect(toHex(noble.computeNonce(ks.baseNonce, x.seq))).toBe(x.nonce);
      expect(toHex(noble.aeadSeal(ks, x.seq, h(x.aad), h(x.pt)))).toBe(x.ct);
      expect(toHex(noble.aeadOpen(ks, x.seq, h(x.aad), h(x.ct)))).toBe(x.pt);
    }
    for (const x of a1.exports) {
      expect(toHex(noble.exportSecret(noble.AEAD_AES128GCM, ks, h(x.exporter_context), x.L))).toBe(
        x.exported_value,
      );
    }
  });
});

describe('RFC 9180 A.1.1 through the node:crypto primitives under the hpke package', () => {
  test('DeriveKeyPair reproduces skEm/pkEm and skRm/pkRm', async () => {
    const suite = new HpkeSuite(DHKEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_128_GCM);
    for (const [ikm, sk, pk] of [
      [a1.ikmE, a1.skEm, a1.pkEm],
      [a1.ikmR, a1.skRm, a1.pkRm],
    ] as const) {
      const pair = await suite.DeriveKeyPair(h(ikm), true);
      expect(toHex(await suite.SerializePrivateKey(pair.privateKey))).toBe(sk);
      expect(toHex(await suite.SerializePublicKey(pair.publicKey))).toBe(pk);
    }
  });

  test('the KEM alone reproduces enc and shared_secret, both ways', async () => {
    const kem = dhkemX25519HkdfSha256({ unsafeIkmE: h(a1.ikmE) })();
    const pkR = await kem.DeserializePublicKey(h(a1.pkRm));
    const { enc, shared_secret } = await kem.Encap(pkR);
    expect(toHex(enc)).toBe(a1.enc);
    expect(toHex(shared_secret)).toBe(a1.shared_secret);
    const skR = await kem.DeserializePrivateKey(h(a1.skRm), false);
    // Without pkR the KEM must derive it from skR for kem_context (§4.1); with it, use it as given.
    expect(toHex(await kem.Decap(h(a1.enc), skR, undefined))).toBe(a1.shared_secret);
    expect(toHex(await kem.Decap(h(a1.enc), skR, pkR))).toBe(a1.shared_secret);
  });

  // Our KDF and AEAD must be drop-in equivalents of hpke's WebCrypto ones: every pairing with our
  // KEM reproduces the vectors, so a mismatch points at the one primitive that differs.
  const pairings: ReadonlyArray<readonly [string, KDFFactory, AEADFactory]> = [
    ['node KDF + node AEAD', KDF_HKDF_SHA256, AEAD_AES_128_GCM],
    ['node KDF + WebCrypto AEAD', KDF_HKDF_SHA256, WEBCRYPTO_AEAD_AES_128_GCM],
    ['WebCrypto KDF + node AEAD', WEBCRYPTO_KDF_HKDF_SHA256, AEAD_AES_128_GCM],
  ];
  test.each(pairings)(
    '%s: sender reproduces every ciphertext and export, recipient opens them',
    async (_, kdf, aead) => {
      const sending = new HpkeSuite(dhkemX25519HkdfSha256({ unsafeIkmE: h(a1.ikmE) }), kdf, aead);
      const receiving = new HpkeSuite(DHKEM_X25519_HKDF_SHA256, kdf, aead);
      const pkR = await sending.DeserializePublicKey(h(a1.pkRm));
      const { encapsulatedSecret, ctx: sender } = await sending.SetupSender(pkR, { info: h(a1.info) });
      expect(toHex(encapsulatedSecret)).toBe(a1.enc);
      const recipientKey = await receiving.DeriveKeyPair(h(a1.ikmR));
      const recipient = await receiving.SetupRecipient(recipientKey, encapsulatedSecret, {
        info: h(a1.info),
      });
      const bySeq = new Map(a1.encryptions.map((e) => [e.seq, e]));
      const pt = h(a1.encryptions[0]!.pt);
      for (let seq = 0; seq <= 256; seq++) {
        const published = bySeq.get(seq);
        const aad = published === undefined ? new Uint8Array(0) : h(published.aad);
        const ct = await sender.Seal(pt, aad);
        if (published !== undefined) expect(toHex(ct)).toBe(published.ct);
        expect(toHex(await recipient.Open(ct, aad))).toBe(toHex(pt));
      }
      for (const x of a1.exports) {
        expect(toHex(await sender.Export(h(x.exporter_context), x.L))).toBe(x.exported_value);
        expect(toHex(await recipient.Export(h(x.exporter_context), x.L))).toBe(x.exported_value);
      }
    },
  );
});

describe('node:crypto primitives on their own', () => {
  test('HKDF-SHA256 matches RFC 5869 A.1 and A.3 (empty salt and info) and noble', async () => {
    const kdf = KDF_HKDF_SHA256();
    const cases = [
      {
        ikm: '0b'.repeat(22),
        salt: '000102030405060708090a0b0c',
        info: 'f0f1f2f3f4f5f6f7f8f9',
        prk: '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5',
        okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
      },
      {
        ikm: '0b'.repeat(22),
        salt: '',
        info: '',
        prk: '19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04',
        okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
      },
    ];
    for (const c of cases) {
      const prk = await kdf.Extract(h(c.salt), h(c.ikm));
      expect(toHex(prk)).toBe(c.prk);
      expect(toHex(await kdf.Expand(prk, h(c.info), 42))).toBe(c.okm);
    }
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 80 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.integer({ min: 0, max: 255 * 32 }),
        async (salt, ikm, info, length) => {
          const prk = await kdf.Extract(salt, ikm);
          expect(toHex(prk)).toBe(toHex(nobleExtract(sha256, ikm, salt)));
          expect(toHex(await kdf.Expand(prk, info, length))).toBe(
            toHex(nobleExpand(sha256, prk, info, length)),
          );
        },
      ),
      { numRuns: 50 },
    );
    await expect(kdf.Expand(new Uint8Array(32), new Uint8Array(0), 255 * 32 + 1)).rejects.toBeInstanceOf(
      ArgumentError,
    );
  });

  test('AES-GCM Open rejects a bad tag or a short ciphertext with VerificationError', async () => {
    for (const aead of [AEAD_AES_128_GCM(), AEAD_AES_256_GCM()]) {
      const key = new Uint8Array(aead.Nk).fill(7);
      const nonce = new Uint8Array(aead.Nn).fill(1);
      const aad = utf8('aad');
      const ct = await aead.Seal(key, nonce, aad, utf8('hello'));
      expect(ct.length).toBe(5 + aead.Nt);
      expect(new TextDecoder().decode(await aead.Open(key, nonce, aad, ct))).toBe('hello');
      const bad = ct.slice();
      bad[bad.length - 1]! ^= 1;
      await expect(aead.Open(key, nonce, aad, bad)).rejects.toBeInstanceOf(VerificationError);
      await expect(aead.Open(key, nonce, utf8('AAD'), ct)).rejects.toBeInstanceOf(VerificationError);
      await expect(aead.Open(key, nonce, aad, ct.subarray(0, aead.Nt - 1))).rejects.toBeInstanceOf(
        VerificationError,
      );
    }
  });

  test('the KEM refuses low-order points itself with VerificationError (RFC 9180 §7.1.4)', async () => {
    const kem = DHKEM_X25519_HKDF_SHA256();
    const skR = await kem.DeserializePrivateKey(recipientSealSecret, false);
    for (const p of LOW_ORDER_POINTS) {
      await expect(kem.Decap(h(p), skR, undefined)).rejects.toBeInstanceOf(VerificationError);
      await expect(kem.Encap(await kem.DeserializePublicKey(h(p)))).rejects.toBeInstanceOf(VerificationError);
    }
  });
});
