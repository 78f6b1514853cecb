/**
 * The relay seal (PROTOCOL.md §4): the checked-in vectors, agreement with the noble implementation
 * and with @hpke/core, the runtime it needs, and argument checks. seal-rfc9180.test.ts checks the
 * HPKE building blocks against RFC 9180; seal-open.test.ts what open() rejects.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { x25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { asUnixSeconds, asUserId, type UserId } from '../../framework/relay/brand.js';
import { toHex } from '../../framework/relay/bytes.js';
import { ArgumentError, VerificationError } from '../../framework/relay/errors.js';
import { createOpener, open, seal, sealAad, sealInfo } from '../../framework/relay/seal.js';
import * as noble from '../support/hpke-noble.js';
import protocol from '../vectors/protocol.json' with { type: 'json' };
import {
  h,
  recipientId,
  recipientSealKey,
  recipientSealSecret,
  plaintext,
  sentAt,
  hint,
  tokenEnv,
  powEnv,
  LOW_ORDER_POINTS,
} from './seal-vectors.js';

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
