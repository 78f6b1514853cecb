import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { asUnixSeconds, asUserId } from '../../framework/relay/brand.js';
import { fromHex, toHex } from '../../framework/relay/bytes.js';
import { decodeMap, encodeMap } from '../../framework/relay/codec.js';
import { ArgumentError, CodecError } from '../../framework/relay/errors.js';
import {
  decodeEnvelope,
  decodeGroupPayload,
  decodeInnerPayload,
  encodeEnvelope,
  encodeGroupPayload,
  encodeInnerPayload,
  innerPayloadSchema,
  MAX_MLS_MESSAGE_BYTES,
  MAX_RATCHET_TREE_BYTES,
  type InnerMsgType,
  type InnerPayload,
  type SealedEnvelope,
} from '../../framework/relay/envelope.js';

type Vec = Record<string, string>;
const vectors = JSON.parse(readFileSync(new URL('../vectors/protocol.json', import.meta.url), 'utf8')) as {
  inner_payload: { fields: Vec; cbor_padded: string; length: number };
  access_token: Record<string, string | number>;
  envelope_with_token: Vec;
  envelope_with_pow: Vec & { smallest_nonce: number };
};

const hex = (h: string): Uint8Array => fromHex(h.replace(/\s+/g, ''));
const expectCodecError = (f: () => unknown, reason: RegExp): void => {
  expect(f).toThrow(CodecError);
  expect(f).toThrow(reason);
};

describe('SealedEnvelope (PROTOCOL.md §5)', () => {
  test('envelope_with_token vector decodes and re-encodes byte-exactly', () => {
    const v = vectors.envelope_with_token;
    const e = decodeEnvelope(hex(v.cbor!));
    expect(toHex(e.enc)).toBe(v.enc);
    expect(toHex(e.ciphertext)).toBe(v.ciphertext);
    expect(e.powNonce).toBe(0n);
    expect(e.sentAt).toBe(vectors.access_token.sent_at);
    expect(toHex(e.access!.hint)).toBe(vectors.access_token.hint);
    expect(toHex(e.access!.tag)).toBe(vectors.access_token.tag);
    expect(toHex(encodeEnvelope(e))).toBe(v.cbor);
  });

  test('envelope_with_pow vector decodes and re-encodes byte-exactly', () => {
    const v = vectors.envelope_with_pow;
    const e = decodeEnvelope(hex(v.cbor!));
    expect(e.powNonce).toBe(BigInt(v.smallest_nonce));
    expect(e.access).toBeUndefined();
    expect(toHex(e.ciphertext)).toBe(v.ciphertext);
    expect(toHex(encodeEnvelope(e))).toBe(v.cbor);
  });

  const envelopeArb: fc.Arbitrary<SealedEnvelope> = fc.record(
    {
      enc: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      ciphertext: fc.uint8Array({ minLength: 16, maxLength: 600 }),
      powNonce: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      access: fc.record({
        hint: fc.uint8Array({ minLength: 4, maxLength: 4 }),
        tag: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      }),
      sentAt: fc.nat().map(asUnixSeconds),
    },
    { requiredKeys: ['enc', 'ciphertext', 'powNonce', 'sentAt'] },
  );

  test('round trip (property)', () => {
    fc.assert(
      fc.property(envelopeArb, (e) => {
        const bytes = encodeEnvelope(e);
        expect(decodeEnvelope(bytes)).toEqual(e);
        expect(toHex(encodeEnvelope(decodeEnvelope(bytes)))).toBe(toHex(bytes));
      }),
    );
  });

  test('arbitrary bytes and mutated envelopes throw only CodecError', () => {
    const base = hex(vectors.envelope_with_pow.cbor!);
    fc.assert(
      fc.property(
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 64 }),
        (at, byte, junk) => {
          const m = base.slice();
          m[at % m.length] = byte;
          for (const input of [m, junk, m.subarray(0, at % m.length)]) {
            try {
              decodeEnvelope(input);
            } catch (err) {
              expect(err).toBeInstanceOf(CodecError);
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  // Built from the pow vector: a5 00 01 | 01 5820 enc | 02 590110 ct | 03 1906ca | 06 1a6b0a5800
  const v = vectors.envelope_with_pow;
  const enc = `5820${v.enc}`;
  const ct = `590110${v.ciphertext}`;
  test.each([
    ['version 2', `a5 0002 01${enc} 02${ct} 03 1906ca 06 1a6b0a5800`, /version: value 2 out of range/],
    ['missing version', `a4 01${enc} 02${ct} 03 1906ca 06 1a6b0a5800`, /required field version/],
    ['missing pow_nonce', `a4 0001 01${enc} 02${ct} 06 1a6b0a5800`, /required field powNonce/],
    [
      'enc of 31 bytes',
      `a5 0001 01 581f${v.enc!.slice(2)} 02${ct} 03 1906ca 06 1a6b0a5800`,
      /enc: bad length 31/,
    ],
    [
      'ciphertext shorter than a GCM tag',
      `a5 0001 01${enc} 02 4f${'00'.repeat(15)} 03 00 06 00`,
      /ciphertext: bad length 15/,
    ],
    [
      'access of 19 bytes',
      `a6 0001 01${enc} 02${ct} 03 00 04 53${'00'.repeat(19)} 06 00`,
      /access: bad length 19/,
    ],
    ['pow_nonce as bytes', `a5 0001 01${enc} 02${ct} 03 4100 06 00`, /expected an unsigned integer/],
    ['keys out of order', `a5 0001 02${ct} 01${enc} 03 00 06 00`, /deterministic order/],
    ['trailing byte', `${v.cbor} 00`, /trailing bytes/],
  ])('rejects %s', (_name, input, reason) => {
    expectCodecError(() => decodeEnvelope(hex(input)), reason);
  });

  test('ignores an unknown key (key 5 is unassigned)', () => {
    const e = decodeEnvelope(hex(`a6 0001 01${enc} 02${ct} 03 1906ca 05 80 06 1a6b0a5800`));
    expect(e.powNonce).toBe(1738n);
  });

  test('encoder refuses a malformed access field', () => {
    const e = decodeEnvelope(hex(v.cbor!));
    expect(() =>
      encodeEnvelope({ ...e, access: { hint: new Uint8Array(3), tag: new Uint8Array(16) } }),
    ).toThrow(ArgumentError);
    expect(() => encodeEnvelope({ ...e, enc: new Uint8Array(33) })).toThrow(ArgumentError);
  });
});

describe('InnerPayload (PROTOCOL.md §6)', () => {
  const f = vectors.inner_payload.fields;
  const vectorPayload: InnerPayload = {
    msgType: Number(f['0']) as InnerMsgType,
    senderId: asUserId(hex(f['1']!)),
    senderIdentityKey: hex(f['2']!),
    mls: hex(f['3']!),
    sealedSenderKey: hex(f['5']!),
    sealedSenderKeySignature: hex(f['7']!),
  };

  test('inner_payload vector is reproduced byte-exactly and decodes back', () => {
    const bytes = encodeInnerPayload(vectorPayload);
    expect(toHex(bytes)).toBe(vectors.inner_payload.cbor_padded);
    expect(bytes).toHaveLength(vectors.inner_payload.length);
    expect(decodeInnerPayload(bytes)).toEqual(vectorPayload);
  });

  const bytesOf = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
  const payloadArb: fc.Arbitrary<InnerPayload> = fc
    .record({
      msgType: fc.constantFrom<InnerMsgType>(3, 5, 6, 7),
      senderId: bytesOf(16).map((b) => asUserId(b)),
      senderIdentityKey: bytesOf(32),
      mls: fc.uint8Array({ minLength: 1, maxLength: 2000 }),
      ratchetTree: fc.option(fc.uint8Array({ minLength: 1, maxLength: 700 }), { nil: undefined }),
      ssk: fc.option(fc.tuple(bytesOf(32), bytesOf(64)), { nil: undefined }),
      rejoin: fc.tuple(bytesOf(32), bytesOf(64), fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn })),
    })
    .map(({ msgType, ratchetTree, ssk, rejoin, ...rest }) => {
      const welcome = msgType === 3 || msgType === 6;
      const p: InnerPayload = { msgType, ...rest };
      if (welcome && ratchetTree !== undefined) p.ratchetTree = ratchetTree;
      const pair = welcome ? (ssk ?? [new Uint8Array(32), new Uint8Array(64)]) : ssk;
      if (pair !== undefined) [p.sealedSenderKey, p.sealedSenderKeySignature] = pair;
      if (msgType === 7) [p.groupId, p.rejoinSignature, p.rejoinEpoch] = rejoin;
      return p;
    });

  test('round trip with every length padded to a multiple of 256 (property)', () => {
    fc.assert(
      fc.property(payloadArb, (p) => {
        const bytes = encodeInnerPayload(p);
        expect(bytes.length % 256).toBe(0);
        expect(decodeInnerPayload(bytes)).toEqual(p);
      }),
      { numRuns: 300 },
    );
  });

  test('padding is minimal across the byte-string header size steps (24 and 256 bytes)', () => {
    // Vary the MLS length over more than a block so the needed padding sweeps all of 0..255.
    const seen = new Set<number>();
    for (let n = 1; n <= 300; n++) {
      const p = { ...vectorPayload, mls: new Uint8Array(n) };
      const bytes = encodeInnerPayload(p);
      expect(bytes.length % 256).toBe(0);
      const pad = decodeMap(innerPayloadSchema, bytes).padding.length;
      seen.add(pad);
      for (let q = 0; q < pad; q++) {
        expect(encodeMap(innerPayloadSchema, { ...p, padding: new Uint8Array(q) }).length % 256).not.toBe(0);
      }
    }
    // Both header steps were crossed: paddings just below and above 24 and 256 bytes occurred.
    expect([...seen].some((x) => x < 24) && [...seen].some((x) => x >= 24 && x < 256)).toBe(true);
    expect([...seen].some((x) => x >= 256)).toBe(true);
  });

  test('maximal MLS message and ratchet tree fit', () => {
    const p: InnerPayload = {
      ...vectorPayload,
      msgType: 3,
      mls: new Uint8Array(MAX_MLS_MESSAGE_BYTES),
      ratchetTree: new Uint8Array(MAX_RATCHET_TREE_BYTES),
    };
    expect(decodeInnerPayload(encodeInnerPayload(p)).mls).toHaveLength(MAX_MLS_MESSAGE_BYTES);
    expect(() => encodeInnerPayload({ ...p, mls: new Uint8Array(MAX_MLS_MESSAGE_BYTES + 1) })).toThrow(
      ArgumentError,
    );
  });

  /** Encode arbitrary fields (bypassing the shape rules) with the given padding. */
  const raw = (fields: Record<string, unknown>, padding: Uint8Array): Uint8Array =>
    encodeMap(innerPayloadSchema, { ...vectorPayload, ...fields, padding } as never);
  const padTo256 = (fields: Record<string, unknown>): Uint8Array => {
    for (let n = 0; n < 600; n++) {
      const b = raw(fields, new Uint8Array(n));
      if (b.length % 256 === 0) return b;
    }
    throw new Error('unreachable');
  };

  test.each([
    ['msg_type 4', { msgType: 4 }, /unknown msg_type 4/],
    ['key 5 without key 7', { sealedSenderKeySignature: undefined }, /must come together/],
    ['key 7 without key 5', { msgType: 5, sealedSenderKey: undefined }, /must come together/],
    [
      'a Welcome without keys 5/7',
      { msgType: 3, sealedSenderKey: undefined, sealedSenderKeySignature: undefined },
      /Welcome must carry/,
    ],
    [
      'a group Welcome without keys 5/7',
      { msgType: 6, sealedSenderKey: undefined, sealedSenderKeySignature: undefined },
      /Welcome must carry/,
    ],
    ['a ratchet tree on a message', { msgType: 5, ratchetTree: new Uint8Array(3) }, /only on a Welcome/],
    [
      'a rejoin without key 10',
      { msgType: 7, groupId: new Uint8Array(32), rejoinEpoch: 1n },
      /GROUP_REJOIN needs/,
    ],
    [
      'a rejoin without key 9',
      { msgType: 7, rejoinSignature: new Uint8Array(64), rejoinEpoch: 1n },
      /GROUP_REJOIN needs/,
    ],
    [
      'a rejoin without key 12 (version 1)',
      { msgType: 7, groupId: new Uint8Array(32), rejoinSignature: new Uint8Array(64) },
      /needs the epoch \(12\)/,
    ],
    ['key 12 on a group Welcome', { msgType: 6, rejoinEpoch: 3n }, /only on GROUP_REJOIN/],
    ['key 9 on a message', { groupId: new Uint8Array(32) }, /only on GROUP_REJOIN/],
    ['key 10 on a Welcome', { msgType: 3, rejoinSignature: new Uint8Array(64) }, /only on GROUP_REJOIN/],
    ['key 11 (group name) on a 1:1 Welcome', { msgType: 3, groupName: 'team' }, /only on a group Welcome/],
    ['a group name over 128 bytes', { msgType: 6, groupName: 'é'.repeat(65) }, /groupName/],
    ['a sender id of 15 bytes', { senderId: new Uint8Array(15) }, /senderId: bad length/],
    ['an empty MLS message', { mls: new Uint8Array(0) }, /mls: bad length 0/],
  ])('rejects %s (decoder CodecError, encoder ArgumentError)', (_name, fields, reason) => {
    let bytes: Uint8Array;
    try {
      bytes = padTo256(fields);
    } catch (err) {
      // Field-level violations cannot even be encoded by our codec; check the encoder's refusal.
      expect(err).toBeInstanceOf(ArgumentError);
      expect(() => encodeInnerPayload({ ...vectorPayload, ...fields } as InnerPayload)).toThrow(
        ArgumentError,
      );
      return;
    }
    expectCodecError(() => decodeInnerPayload(bytes), reason);
    expect(() => encodeInnerPayload({ ...vectorPayload, ...fields } as InnerPayload)).toThrow(ArgumentError);
  });

  test('a group Welcome may carry our key 11, the group name, and it round-trips', () => {
    const p: InnerPayload = {
      ...vectorPayload,
      msgType: 6,
      ratchetTree: new Uint8Array(5),
      groupName: 'team ✓',
    };
    expect(decodeInnerPayload(encodeInnerPayload(p))).toEqual(p);
  });

  test('rejects a sender id of the wrong length on the wire', () => {
    const good = vectors.inner_payload.cbor_padded;
    // Replace "01 50 <16 bytes>" with "01 4f <15 bytes>" and one more padding byte keeps 256 bytes.
    const tampered =
      good.replace(`0150${f['1']}`, `014f${f['1']!.slice(2)}`).replace('085855', '085856') + '00';
    expect(hex(tampered)).toHaveLength(256);
    expectCodecError(() => decodeInnerPayload(hex(tampered)), /senderId: bad length 15/);
  });

  test('rejects missing, non-zero or misaligned padding', () => {
    const good = hex(vectors.inner_payload.cbor_padded);
    const nonZero = good.slice();
    nonZero[255] = 1;
    expectCodecError(() => decodeInnerPayload(nonZero), /padding is not all zero/);
    expectCodecError(() => decodeInnerPayload(good.subarray(0, 255)), /not a multiple of 256/);
    expectCodecError(() => decodeInnerPayload(raw({}, new Uint8Array(341))), /not a multiple of 256/);
    // A map without key 8, made 256 bytes long with an unknown key 13.
    const withoutPadding = hex(vectors.inner_payload.cbor_padded.replace('085855', '0d5855'));
    expectCodecError(() => decodeInnerPayload(withoutPadding), /required field padding/);
  });

  test('accepts padding longer than minimal', () => {
    const p = decodeInnerPayload(raw({}, new Uint8Array(85 + 256 - 1)));
    expect(p).toEqual(vectorPayload);
  });

  test('arbitrary bytes throw only CodecError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 256, maxLength: 256 }), fc.nat(255), (junk, at) => {
        const m = hex(vectors.inner_payload.cbor_padded);
        m[at] = junk[at]!;
        for (const input of [junk, m]) {
          try {
            decodeInnerPayload(input);
          } catch (err) {
            expect(err).toBeInstanceOf(CodecError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('GroupPayload (PROTOCOL.md §9)', () => {
  test('is exactly {0: 5, 3: MLSMessage}', () => {
    const bytes = encodeGroupPayload(hex('0001020304'));
    expect(toHex(bytes)).toBe('a2' + '0005' + '03450001020304');
    expect(toHex(decodeGroupPayload(bytes))).toBe('0001020304');
  });

  test.each([
    ['a sender id (key 1)', 'a3 0005 01 4100 03 4101', /sender fields/],
    ['an identity key (key 2)', 'a3 0005 02 4100 03 4101', /sender fields/],
    ['msg_type 3', 'a2 0003 03 4101', /out of range/],
    ['no MLS message', 'a1 0005', /required field mls/],
  ])('rejects %s', (_name, input, reason) => {
    expectCodecError(() => decodeGroupPayload(hex(input)), reason);
  });

  test('rejects more than 256 KiB before decoding', () => {
    expectCodecError(() => decodeGroupPayload(new Uint8Array(256 * 1024 + 1)), /limit/);
  });
});
