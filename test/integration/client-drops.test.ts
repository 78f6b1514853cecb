/**
 * Hostile inputs against a live RelayClient through a real broker (PROTOCOL.md §4, §5, §6, §10):
 * every case must end in one specific drop counter, no 'message' event and an unchanged store.
 * Each negative case is paired with a positive control where one is meaningful: the same crafted
 * input without the defect is accepted (usually after the hostile one, which also shows the hostile
 * one consumed nothing), so a broken harness cannot pass silently.
 *
 * One victim and one peer with an established 1:1 session are shared by all tests of a file
 * (test/support/drops-victim.ts); the attacker is a raw MQTT connection that also records what the
 * peer publishes to the victim's inbox. This file: sealed envelopes on the inbox;
 * client-drops-bundles.test.ts: Welcome replay and key bundles.
 */
import { randomBytes } from 'node:crypto';
import {
  RelayClient,
  decodeEnvelope,
  encodeContent,
  encodeEnvelope,
  generateIdentity,
  leadingZeroBits,
  mls,
  powChallenge,
  powHash,
  userIdToHex,
  verifyPow,
  type InnerPayload,
  type UnixSeconds,
} from '../../framework/relay/index.js';
import {
  RawMqtt,
  SessionForger,
  cborMap,
  envelopeEntries,
  invalidNonce,
  messageInner,
  mineFor,
  nonceWithExactBits,
  nowSeconds,
  powEnvelope,
  sealInner,
  type Recipient,
} from '../support/attacker.js';
import { POW_BITS, useDropsVictim } from '../support/drops-victim.js';

const fixture = useDropsVictim();
// The clients exist from the fixture's beforeAll on; bound to names here once they do.
const { received, securityEvents, until, expectDropped, expectDelivered, genuineInner, withNonce } = fixture;
let ctx: mls.MlsContext;
let attacker: RawMqtt;
let victim: RelayClient;
let peer: RelayClient;
let forger: SessionForger;
let inbox: string;
let victimAddr: Recipient;
beforeAll(() => {
  ({ ctx, attacker, victim, peer, forger, inbox, victimAddr } = fixture);
});

describe('sealed envelopes on the inbox', () => {
  test('PoW one bit short (exactly 17 leading zero bits for an 18-bit inbox) → pow', async () => {
    const text = 'pow-short control';
    const sealed = await sealInner(victimAddr, await genuineInner(text), nowSeconds());
    const challenge = powChallenge(victimAddr.userId, sealed.sentAt, sealed.enc, sealed.ciphertext);
    const short = nonceWithExactBits(challenge, POW_BITS - 1);
    expect(leadingZeroBits(powHash(challenge, short))).toBe(POW_BITS - 1);
    expect(verifyPow(challenge, short, POW_BITS)).toBe(false);

    await expectDropped(withNonce(sealed, short), 'pow');
    await expectDelivered(withNonce(sealed, mineFor(victimAddr.userId, sealed, POW_BITS)), text);
  });

  test('PoW mined for another recipient → pow', async () => {
    const text = 'pow-other-recipient control';
    const sealed = await sealInner(victimAddr, await genuineInner(text), nowSeconds());
    const other = generateIdentity().userId;
    const otherChallenge = powChallenge(other, sealed.sentAt, sealed.enc, sealed.ciphertext);
    const ownChallenge = powChallenge(victimAddr.userId, sealed.sentAt, sealed.enc, sealed.ciphertext);
    let nonce = mineFor(other, sealed, POW_BITS);
    // One in 2^18 nonces also happens to suit the victim: skip those so the case is what it says.
    while (verifyPow(ownChallenge, nonce, POW_BITS)) nonce = nonceWithExactBits(otherChallenge, POW_BITS);
    expect(verifyPow(otherChallenge, nonce, POW_BITS)).toBe(true);

    await expectDropped(withNonce(sealed, nonce), 'pow');
    await expectDelivered(withNonce(sealed, mineFor(victimAddr.userId, sealed, POW_BITS)), text);
  });

  test('sent_at an hour old, with valid PoW for that sent_at → sent_at', async () => {
    const text = 'stale control';
    const inner = await genuineInner(text);
    const stale = await powEnvelope(victimAddr, inner, POW_BITS, (nowSeconds() - 3600) as UnixSeconds);
    const e = stale.envelope;
    expect(
      verifyPow(powChallenge(victimAddr.userId, e.sentAt, e.enc, e.ciphertext), e.powNonce, POW_BITS),
    ).toBe(true);

    await expectDropped(stale.bytes, 'sent_at');
    await expectDelivered((await powEnvelope(victimAddr, inner, POW_BITS)).bytes, text);
  });

  test('exact replay of a delivered access-token envelope → replay', async () => {
    const text = 'replay me';
    const seen = attacker.captured(inbox).length;
    await peer.send(victim.userId, text);
    const original = await attacker.nth(inbox, seen + 1);
    // Positive control: the first delivery of these very bytes is accepted.
    await until(() => received.some((m) => m.content.content === text), 'the original');
    expect(decodeEnvelope(original).access).toBeDefined();

    await expectDropped(original, 'replay');
  });

  test('exact replay of a delivered PoW envelope → replay', async () => {
    const text = 'replay pow';
    const env = await powEnvelope(victimAddr, await genuineInner(text), POW_BITS);
    await expectDelivered(env.bytes, text);

    await expectDropped(env.bytes, 'replay');
  });

  test('one flipped ciphertext bit, PoW recomputed over the flipped bytes → hpke', async () => {
    const text = 'flip control';
    const sealed = await sealInner(victimAddr, await genuineInner(text), nowSeconds());
    const flipped = { ...sealed, ciphertext: sealed.ciphertext.slice() };
    flipped.ciphertext[Math.floor(flipped.ciphertext.length / 2)]! ^= 0x01;

    await expectDropped(withNonce(flipped, mineFor(victimAddr.userId, flipped, POW_BITS)), 'hpke');
    await expectDelivered(withNonce(sealed, mineFor(victimAddr.userId, sealed, POW_BITS)), text);
  });

  test.each([
    ['all-zero (u = 0)', new Uint8Array(32)],
    ['u = 1', Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))],
  ])('low-order enc %s with valid PoW over it → hpke', async (_name, lowOrder) => {
    const text = `low-order control ${_name}`;
    const sealed = await sealInner(victimAddr, await genuineInner(text), nowSeconds());
    const bad = { ...sealed, enc: lowOrder };

    await expectDropped(withNonce(bad, mineFor(victimAddr.userId, bad, POW_BITS)), 'hpke');
    await expectDelivered(withNonce(sealed, mineFor(victimAddr.userId, sealed, POW_BITS)), text);
  });

  test('garbage bytes → codec', async () => {
    const garbage = Buffer.concat([Buffer.from('this is not CBOR'), randomBytes(400)]);
    await expectDropped(garbage, 'codec');
  });

  test('duplicate CBOR map key in an otherwise valid envelope → codec', async () => {
    const text = 'duplicate-key control';
    const { envelope } = await powEnvelope(victimAddr, await genuineInner(text), POW_BITS);
    const entries = envelopeEntries(envelope);
    const canonical = cborMap(entries);
    // The hand encoder writes exactly what the framework writes, so only the duplicate differs.
    expect(Buffer.from(canonical).equals(Buffer.from(encodeEnvelope(envelope)))).toBe(true);
    const nonceAt = entries.findIndex(([k]) => k === 3);
    const duplicated = [...entries.slice(0, nonceAt + 1), entries[nonceAt]!, ...entries.slice(nonceAt + 1)];

    await expectDropped(cborMap(duplicated), 'codec');
    await expectDelivered(canonical, text);
  });

  test('envelope one byte over 256 KiB → oversize; exactly 256 KiB passes the size check', async () => {
    const limit = 256 * 1024;
    const sentAt = nowSeconds();
    const enc = randomBytes(32);
    // Nonces from 2^32 up all encode in 9 bytes, so the envelope size is known before mining.
    const wideNonce = 2n ** 32n;
    const probe = encodeEnvelope({ enc, ciphertext: new Uint8Array(limit), powNonce: wideNonce, sentAt });
    const overhead = probe.length - limit;
    const sized = (total: number): Uint8Array => {
      const e = { enc, ciphertext: randomBytes(total - overhead), sentAt };
      const bytes = withNonce(e, mineFor(victimAddr.userId, e, POW_BITS, wideNonce));
      expect(bytes.length).toBe(total);
      return bytes;
    };

    await expectDropped(sized(limit + 1), 'oversize');
    // Control: at the limit the same construction (valid PoW, random ciphertext) gets past size,
    // CBOR, time, replay and PoW, and fails only where it must: HPKE.
    await expectDropped(sized(limit), 'hpke');
  });

  test('an access tag copied onto another envelope is no token: PoW is required → pow', async () => {
    const sourceText = 'tag source';
    const seen = attacker.captured(inbox).length;
    await peer.send(victim.userId, sourceText);
    const source = decodeEnvelope(await attacker.nth(inbox, seen + 1));
    await until(() => received.some((m) => m.content.content === sourceText), 'the tag source');
    const access = source.access!;
    expect(access).toBeDefined();

    // Another envelope to the victim, in the same hour bucket, sealed with the copied hint in its
    // AAD (so only the tag is wrong), carrying the copied hint and tag and no valid PoW.
    const text = 'copied-tag control';
    const sealed = await sealInner(victimAddr, await genuineInner(text), source.sentAt, access.hint);
    const challenge = powChallenge(victimAddr.userId, sealed.sentAt, sealed.enc, sealed.ciphertext);
    const copied = { ...sealed, access };

    await expectDropped(withNonce(copied, invalidNonce(challenge, POW_BITS)), 'pow');
    // §5: "a tag that does not verify means the envelope needs valid PoW like any other": with
    // valid PoW the very same envelope (copied tag still on it) is accepted.
    await expectDelivered(withNonce(copied, mineFor(victimAddr.userId, sealed, POW_BITS)), text);
  });

  test("InnerPayload claiming the peer's id with the attacker's key → sender_binding + security event", async () => {
    const text = 'binding control';
    const mlsMessage = await forger.applicationMessage(text);
    const mallory = generateIdentity();
    const forged: InnerPayload = {
      ...messageInner(peer.identity, mlsMessage),
      senderIdentityKey: mallory.signingPublic,
    };
    const events = securityEvents.length;

    await expectDropped((await powEnvelope(victimAddr, forged, POW_BITS)).bytes, 'sender_binding');
    expect(securityEvents.slice(events)).toEqual([{ kind: 'sender_binding', claimedSender: peer.userId }]);
    await expectDelivered(
      (await powEnvelope(victimAddr, messageInner(peer.identity, mlsMessage), POW_BITS)).bytes,
      text,
    );
    expect(securityEvents.length).toBe(events + 1);
  });

  // PROTOCOL.md §6: the MLS sender must carry key 2 as its credential key, and "Any mismatch: drop
  // and log a security event". Here keys 1 and 2 are self-consistent (the attacker's own), but the
  // MLS message inside is the peer's, so only the session/MLS-side binding catches it.
  test("the peer's MLS message re-wrapped under the attacker's own ids → sender_binding + security event", async () => {
    const text = 'rewrap control';
    const mlsMessage = await forger.applicationMessage(text);
    const mallory = generateIdentity();
    const events = securityEvents.length;

    await expectDropped(
      (await powEnvelope(victimAddr, messageInner(mallory, mlsMessage), POW_BITS)).bytes,
      'sender_binding',
    );
    await expectDelivered(
      (await powEnvelope(victimAddr, messageInner(peer.identity, mlsMessage), POW_BITS)).bytes,
      text,
    );
    expect(securityEvents.slice(events)).toEqual([
      { kind: 'sender_binding', claimedSender: userIdToHex(mallory.userId) },
    ]);
  });

  test('an MLS message for a group the victim has no session in → unknown_session', async () => {
    const mallory = generateIdentity();
    const other = generateIdentity();
    const otherKp = await mls.generateKeyPackage(ctx, other, nowSeconds());
    const created = await mls.createOneToOne(ctx, mallory, otherKp.keyPackage);
    const stray = await mls.encryptApplication(ctx, created.state, encodeContent({ content: 'stray' }));

    await expectDropped(
      (await powEnvelope(victimAddr, messageInner(mallory, stray.message), POW_BITS)).bytes,
      'unknown_session',
    );
  });
});
