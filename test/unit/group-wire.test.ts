/**
 * The group-only wire pieces that are pure functions: the GROUP_REJOIN signature (PROTOCOL.md §9,
 * checked against a checked-in vector and a second Ed25519 implementation) and the `"pad"` field
 * of group application content (§8).
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import {
  decodeContent,
  encodeContent,
  fromHex,
  identityFromSecrets,
  rejoinSignatureMessage,
  signRejoin,
  toHex,
  verifyRejoin,
} from '../../framework/relay/index.js';

interface RejoinVector {
  signingSeed: string;
  identityKey: string;
  groupId: string;
  epoch: number;
  keyPackage: string;
  sentAt: number;
  message: string;
  signature: string;
}
const vector = JSON.parse(
  readFileSync(new URL('../vectors/rejoin.json', import.meta.url), 'utf8'),
) as RejoinVector;

const u64 = (n: number | bigint) => Buffer.from(BigInt(n).toString(16).padStart(16, '0'), 'hex');

describe('GROUP_REJOIN signature (key 10, version 2)', () => {
  const identity = identityFromSecrets(fromHex(vector.signingSeed), new Uint8Array(32).fill(9));
  const claim = {
    groupId: fromHex(vector.groupId),
    epoch: BigInt(vector.epoch),
    keyPackage: fromHex(vector.keyPackage),
    sentAt: vector.sentAt,
  };

  test('the signed message is the label, the group id, u64be(epoch), SHA-256 of key 3 and u64be(sent_at)', () => {
    const byHand = Buffer.concat([
      Buffer.from('relay-rejoin-v2', 'ascii'),
      claim.groupId,
      u64(vector.epoch),
      createHash('sha256').update(claim.keyPackage).digest(),
      u64(vector.sentAt),
    ]);
    expect(toHex(rejoinSignatureMessage(claim))).toBe(toHex(byHand));
    expect(toHex(byHand)).toBe(vector.message);
  });

  test('our signature is the vector, and @noble/curves verifies it', () => {
    expect(toHex(identity.signingPublic)).toBe(vector.identityKey);
    const sig = signRejoin(identity, claim);
    expect(toHex(sig)).toBe(vector.signature);
    expect(ed25519.verify(sig, fromHex(vector.message), fromHex(vector.identityKey))).toBe(true);
  });

  test('verifyRejoin accepts the vector and refuses any other group, epoch, key package, time or key', () => {
    const sig = fromHex(vector.signature);
    const key = fromHex(vector.identityKey);
    expect(verifyRejoin(key, claim, sig)).toBe(true);
    const otherGroup = claim.groupId.slice();
    otherGroup[0]! ^= 1;
    expect(verifyRejoin(key, { ...claim, groupId: otherGroup }, sig)).toBe(false);
    expect(verifyRejoin(key, { ...claim, epoch: claim.epoch + 1n }, sig)).toBe(false);
    expect(verifyRejoin(key, { ...claim, epoch: claim.epoch - 1n }, sig)).toBe(false);
    expect(verifyRejoin(key, { ...claim, keyPackage: claim.keyPackage.subarray(1) }, sig)).toBe(false);
    expect(verifyRejoin(key, { ...claim, sentAt: vector.sentAt + 1 }, sig)).toBe(false);
    expect(verifyRejoin(new Uint8Array(32), claim, sig)).toBe(false);
    expect(verifyRejoin(key, claim, sig.subarray(1))).toBe(false);
    expect(verifyRejoin(key, { ...claim, epoch: -1n }, sig)).toBe(false);
  });
});

describe('group content padding ("pad")', () => {
  test('a short message is padded to exactly 256 bytes and decodes to the same content', () => {
    const bytes = encodeContent({ content: 'hi', id: 'm1' }, { padTo: 256 });
    expect(bytes.length).toBe(256);
    expect(decodeContent(bytes)).toEqual({ content: 'hi', id: 'm1', type: 'text' });
  });

  test('any content pads to a multiple of 256 bytes, round-trips, and stays minimal', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 600 }),
        fc.option(fc.string({ maxLength: 40 })),
        (text, replyTo) => {
          const c = { content: text, id: 'x', ...(replyTo !== null ? { replyTo } : {}) };
          const padded = encodeContent(c, { padTo: 256 });
          const plain = encodeContent(c);
          expect(padded.length % 256).toBe(0);
          expect(padded.length - plain.length).toBeLessThan(256 + 9);
          expect(padded.length).toBeGreaterThanOrEqual(plain.length);
          expect(decodeContent(padded)).toEqual(decodeContent(plain));
        },
      ),
    );
  });

  test('1:1 content carries no pad', () => {
    expect(new TextDecoder().decode(encodeContent({ content: 'hi' }))).toBe('{"content":"hi"}');
  });
});
