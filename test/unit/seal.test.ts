import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { x25519 } from '@noble/curves/ed25519.js';
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
import { asUnixSeconds, asUserId, type UnixSeconds, type UserId } from '../../framework/relay/brand.js';
import { fromHex, toHex, utf8 } from '../../framework/relay/bytes.js';
import { ArgumentError, VerificationError } from '../../framework/relay/errors.js';
import { createOpener, open, seal, sealAad, sealInfo, type OpenArgs } from '../../framework/relay/seal.js';
import {
  AEAD_AES_128_GCM,
  AEAD_AES_256_GCM,
  DHKEM_X25519_HKDF_SHA256,
  KDF_HKDF_SHA256,
  dhkemX25519HkdfSha256,
} from '../../framework/relay/seal-node-primitives.js';
import * as noble from '../support/hpke-noble.js';
import protocol from '../vectors/protocol.json' with { type: 'json' };
import a1 from '../vectors/rfc9180-a1.json' with { type: 'json' };

const h = fromHex;

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

const recipientId = asUserId(h(protocol.recipient.user_id));
const recipientSealKey = h(protocol.recipient.x25519_public);
const recipientSealSecret = h(protocol.recipient.x25519_secret);
const plaintext = h(protocol.inner_payload.cbor_padded);
const sentAt = asUnixSeconds(protocol.access_token.sent_at);
const hint = h(protocol.access_token.hint);
const tokenEnv = protocol.envelope_with_token;
const powEnv = protocol.envelope_with_pow;

describe('relay seal: vectors.json', () => {
  test('info and aad are byte-exact', () => {
    expect(toHex(sealInfo(recipientId))).toBe(tokenEnv.info);
    expect(toHex(sealAad(sentAt, hint))).toBe(tokenEnv.aad);
    expect(toHex(sealAad(sentAt))).toBe(powEnv.aad);
  });

  test('the recipient key pair in the vectors is consistent', () => {
    expect(toHex(x25519.getPublicKey(recipientSealSecret))).toBe(protocol.recipient.x25519_public);
  });

  test('envelope_with_token: enc and ciphertext reproduce and open', async () => {
    const out = await seal({
      recipientId,
      recipientSealKey,
      plaintext,
      sentAt,
      hint,
      unsafeIkmE: h(tokenEnv.hpke_ikmE),
    });
    expect(toHex(out.enc)).toBe(tokenEnv.enc);
    expect(toHex(out.ciphertext)).toBe(tokenEnv.ciphertext);
    const pt = await open({
      recipientId,
      recipientSealSecret,
      enc: h(tokenEnv.enc),
      ciphertext: h(tokenEnv.ciphertext),
      sentAt,
      hint,
    });
    expect(toHex(pt)).toBe(protocol.inner_payload.cbor_padded);
  });

  test('envelope_with_pow: same enc, different aad, reproduces and opens', async () => {
    const out = await seal({
      recipientId,
      recipientSealKey,
      plaintext,
      sentAt,
      unsafeIkmE: h(tokenEnv.hpke_ikmE),
    });
    expect(toHex(out.enc)).toBe(powEnv.enc);
    expect(toHex(out.ciphertext)).toBe(powEnv.ciphertext);
    const opener = await createOpener(recipientSealSecret);
    const pt = await opener.open({
      recipientId,
      enc: h(powEnv.enc),
      ciphertext: h(powEnv.ciphertext),
      sentAt,
    });
    expect(toHex(pt)).toBe(protocol.inner_payload.cbor_padded);
  });

  test('the noble implementation (AES-256-GCM) reproduces both envelopes', () => {
    for (const [aad, ct] of [
      [tokenEnv.aad, tokenEnv.ciphertext],
      [powEnv.aad, powEnv.ciphertext],
    ] as const) {
      const out = noble.sealBase({
        aeadId: noble.AEAD_AES256GCM,
        pkR: recipientSealKey,
        info: h(tokenEnv.info),
        aad: h(aad),
        plaintext,
        ikmE: h(tokenEnv.hpke_ikmE),
      });
      expect(toHex(out.enc)).toBe(tokenEnv.enc);
      expect(toHex(out.ciphertext)).toBe(ct);
    }
  });
});

describe('relay seal agrees with the noble implementation', () => {
  const arbUnix = fc.integer({ min: 0, max: 2 ** 40 }).map((n) => asUnixSeconds(n));
  const arbBytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });

  test('deterministic seals are byte-identical, and each side opens the other', async () => {
    await fc.assert(
      fc.asyncProperty(
        arbBytes(32),
        arbBytes(16),
        fc.uint8Array({ maxLength: 600 }),
        arbUnix,
        fc.option(arbBytes(4), { nil: undefined }),
        arbBytes(32),
        async (skR, rid, pt, at, maybeHint, ikmE) => {
          const id = asUserId(rid);
          const pkR = x25519.getPublicKey(skR);
          const ours = await seal({
            recipientId: id,
            recipientSealKey: pkR,
            plaintext: pt,
            sentAt: at,
            hint: maybeHint,
            unsafeIkmE: ikmE,
          });
          const theirs = noble.sealBase({
            aeadId: noble.AEAD_AES256GCM,
            pkR,
            info: sealInfo(id),
            aad: sealAad(at, maybeHint),
            plaintext: pt,
            ikmE,
          });
          expect(toHex(ours.enc)).toBe(toHex(theirs.enc));
          expect(toHex(ours.ciphertext)).toBe(toHex(theirs.ciphertext));
          const opened = await open({
            recipientId: id,
            recipientSealSecret: skR,
            enc: theirs.enc,
            ciphertext: theirs.ciphertext,
            sentAt: at,
            hint: maybeHint,
          });
          expect(toHex(opened)).toBe(toHex(pt));
        },
      ),
      { numRuns: 25 },
    );
  });

  test('a randomly sealed envelope (fresh ephemeral key) opens with noble', async () => {
    const a = await seal({ recipientId, recipientSealKey, plaintext, sentAt, hint });
    const b = await seal({ recipientId, recipientSealKey, plaintext, sentAt, hint });
    expect(toHex(a.enc)).not.toBe(toHex(b.enc));
    const pt = noble.openBase({
      aeadId: noble.AEAD_AES256GCM,
      skR: recipientSealSecret,
      enc: a.enc,
      info: sealInfo(recipientId),
      aad: sealAad(sentAt, hint),
      ciphertext: a.ciphertext,
    });
    expect(toHex(pt)).toBe(toHex(plaintext));
  });
});

describe('relay seal interoperates with @hpke/core (the previous implementation)', () => {
  const core = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes256Gcm(),
  });
  const arbBytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });

  test('deterministic seals are byte-identical, and each opens the other', async () => {
    await fc.assert(
      fc.asyncProperty(
        arbBytes(32),
        arbBytes(16),
        fc.uint8Array({ maxLength: 600 }),
        fc.integer({ min: 0, max: 2 ** 40 }).map((n) => asUnixSeconds(n)),
        fc.option(arbBytes(4), { nil: undefined }),
        arbBytes(32),
        async (skR, rid, pt, at, maybeHint, ikmE) => {
          const id = asUserId(rid);
          const pkR = x25519.getPublicKey(skR);
          const info = sealInfo(id);
          const aad = sealAad(at, maybeHint);
          const ours = await seal({
            recipientId: id,
            recipientSealKey: pkR,
            plaintext: pt,
            sentAt: at,
            hint: maybeHint,
            unsafeIkmE: ikmE,
          });
          const recipientPublicKey = await core.kem.deserializePublicKey(pkR);
          const theirs = await core.seal({ recipientPublicKey, info, ekm: ikmE }, pt, aad);
          expect(toHex(ours.enc)).toBe(toHex(new Uint8Array(theirs.enc)));
          expect(toHex(ours.ciphertext)).toBe(toHex(new Uint8Array(theirs.ct)));

          const recipientKey = await core.kem.importKey('raw', skR, false);
          const byCore = await core.open({ recipientKey, enc: ours.enc, info }, ours.ciphertext, aad);
          expect(toHex(new Uint8Array(byCore))).toBe(toHex(pt));
          const byUs = await open({
            recipientId: id,
            recipientSealSecret: skR,
            enc: new Uint8Array(theirs.enc),
            ciphertext: new Uint8Array(theirs.ct),
            sentAt: at,
            hint: maybeHint,
          });
          expect(toHex(byUs)).toBe(toHex(pt));
        },
      ),
      { numRuns: 15 },
    );
  });

  test('random-ephemeral seals cross in both directions', async () => {
    const info = sealInfo(recipientId);
    const aad = sealAad(sentAt, hint);
    const ours = await seal({ recipientId, recipientSealKey, plaintext, sentAt, hint });
    const recipientKey = await core.kem.importKey('raw', recipientSealSecret, false);
    const byCore = await core.open({ recipientKey, enc: ours.enc, info }, ours.ciphertext, aad);
    expect(toHex(new Uint8Array(byCore))).toBe(toHex(plaintext));

    const recipientPublicKey = await core.kem.deserializePublicKey(recipientSealKey);
    const theirs = await core.seal({ recipientPublicKey, info }, plaintext, aad);
    const opener = await createOpener(recipientSealSecret);
    const byUs = await opener.open({
      recipientId,
      enc: new Uint8Array(theirs.enc),
      ciphertext: new Uint8Array(theirs.ct),
      sentAt,
      hint,
    });
    expect(toHex(byUs)).toBe(toHex(plaintext));
    // The AAD still binds: @hpke/core's envelope with another sent_at does not open here.
    await expect(
      opener.open({
        recipientId,
        enc: new Uint8Array(theirs.enc),
        ciphertext: new Uint8Array(theirs.ct),
        sentAt: asUnixSeconds(sentAt + 1),
        hint,
      }),
    ).rejects.toBeInstanceOf(VerificationError);
  });
});

/** X25519 points of small order (u-coordinates, little-endian); each makes DH output zero. */
const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

describe('relay open rejects with VerificationError only', () => {
  const good: OpenArgs = {
    recipientId,
    enc: h(tokenEnv.enc),
    ciphertext: h(tokenEnv.ciphertext),
    sentAt,
    hint,
  };
  let opener: Awaited<ReturnType<typeof createOpener>>;
  beforeAll(async () => {
    opener = await createOpener(recipientSealSecret);
  });

  async function expectRejected(args: OpenArgs): Promise<void> {
    await expect(opener.open(args)).rejects.toBeInstanceOf(VerificationError);
    await expect(open({ ...args, recipientSealSecret })).rejects.toBeInstanceOf(VerificationError);
  }

  test('the unmodified envelope opens (control)', async () => {
    expect(toHex(await opener.open(good))).toBe(protocol.inner_payload.cbor_padded);
  });

  test('a flipped bit anywhere in the ciphertext', async () => {
    const ct = good.ciphertext;
    for (const bit of [0, 7, 8 * 100 + 3, 8 * (ct.length - 17), 8 * (ct.length - 16), 8 * ct.length - 1]) {
      const flipped = ct.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      await expectRejected({ ...good, ciphertext: flipped });
    }
  });

  test('a flipped bit in enc', async () => {
    const enc = good.enc.slice();
    enc[5]! ^= 0x10;
    await expectRejected({ ...good, enc });
  });

  test('wrong sent_at', async () => {
    await expectRejected({ ...good, sentAt: asUnixSeconds(sentAt + 1) });
    await expectRejected({ ...good, sentAt: asUnixSeconds(sentAt - 3600) });
  });

  test('wrong, missing or surplus hint', async () => {
    const other = hint.slice();
    other[3]! ^= 1;
    await expectRejected({ ...good, hint: other });
    await expectRejected({ ...good, hint: undefined });
    await expectRejected({ ...good, ciphertext: h(powEnv.ciphertext), hint });
    await expectRejected({ ...good, hint: h('d0db4e') });
  });

  test('wrong recipient id', async () => {
    const id = recipientId.slice();
    id[15]! ^= 1;
    await expectRejected({ ...good, recipientId: asUserId(id) });
  });

  test('truncated or extended ciphertext', async () => {
    const ct = good.ciphertext;
    for (const cut of [
      ct.subarray(0, ct.length - 1),
      ct.subarray(0, 16),
      ct.subarray(0, 15),
      new Uint8Array(0),
    ]) {
      await expectRejected({ ...good, ciphertext: cut });
    }
    const longer = new Uint8Array(ct.length + 1);
    longer.set(ct);
    await expectRejected({ ...good, ciphertext: longer });
  });

  test('wrong enc length', async () => {
    for (const n of [0, 31, 33, 64]) {
      const enc = new Uint8Array(n);
      enc.set(good.enc.subarray(0, Math.min(n, 32)));
      await expectRejected({ ...good, enc });
    }
  });

  test('low-order enc points (all-zero shared secret, RFC 9180 §7.1.4)', async () => {
    for (const p of LOW_ORDER_POINTS) {
      // Guard that the list really is low order: noble refuses the zero DH output.
      expect(() => x25519.getSharedSecret(recipientSealSecret, h(p))).toThrow();
      await expectRejected({ ...good, enc: h(p) });
    }
  });

  test('wrong recipient secret', async () => {
    const other = await createOpener(new Uint8Array(32).fill(9));
    await expect(other.open(good)).rejects.toBeInstanceOf(VerificationError);
  });

  test('random garbage never escapes as another error type', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 })),
        fc.uint8Array({ maxLength: 300 }),
        fc.option(fc.uint8Array({ maxLength: 6 }), { nil: undefined }),
        async (enc, ciphertext, maybeHint) => {
          await expect(opener.open({ ...good, enc, ciphertext, hint: maybeHint })).rejects.toBeInstanceOf(
            VerificationError,
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  test('a network-supplied sent_at that is not a safe integer is a VerificationError', async () => {
    await expect(opener.open({ ...good, sentAt: -1 as UnixSeconds })).rejects.toBeInstanceOf(
      VerificationError,
    );
    await expect(opener.open({ ...good, sentAt: 1.5 as UnixSeconds })).rejects.toBeInstanceOf(
      VerificationError,
    );
  });
});

describe('runtime', () => {
  test('WebCrypto in this Node provides X25519 and AES-256-GCM natively (what @hpke/core runs on)', async () => {
    const subtle = globalThis.crypto.subtle;
    const aes = await subtle.importKey('raw', new Uint8Array(32), { name: 'AES-GCM' }, false, ['encrypt']);
    expect(aes.algorithm).toEqual({ name: 'AES-GCM', length: 256 });
    const pair = await subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    expect('privateKey' in pair).toBe(true);
  });
});

describe('relay seal argument checks', () => {
  test('malformed caller arguments are ArgumentError', async () => {
    expect(() => sealAad(sentAt, new Uint8Array(3))).toThrow(ArgumentError);
    expect(() => sealInfo(new Uint8Array(15) as UserId)).toThrow(ArgumentError);
    await expect(
      seal({ recipientId, recipientSealKey: new Uint8Array(31), plaintext, sentAt }),
    ).rejects.toBeInstanceOf(ArgumentError);
    await expect(createOpener(new Uint8Array(31))).rejects.toBeInstanceOf(ArgumentError);
    await expect(
      open({
        recipientId: new Uint8Array(3) as UserId,
        recipientSealSecret,
        enc: h(tokenEnv.enc),
        ciphertext: h(tokenEnv.ciphertext),
        sentAt,
      }),
    ).rejects.toBeInstanceOf(ArgumentError);
  });

  test('sealing to a low-order recipient key is refused with VerificationError', async () => {
    for (const p of LOW_ORDER_POINTS) {
      await expect(seal({ recipientId, recipientSealKey: h(p), plaintext, sentAt })).rejects.toBeInstanceOf(
        VerificationError,
      );
    }
  });
});
