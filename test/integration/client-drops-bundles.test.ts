/**
 * Hostile Welcomes and key bundles against a live RelayClient through a real broker (PROTOCOL.md
 * §2, §6): the same victim, peer and checks as client-drops.test.ts, in a victim of its own.
 */
import {
  MSG_TYPE,
  ProtocolError,
  RelayClient,
  RelayError,
  VerificationError,
  decodeEnvelope,
  decodeInnerPayload,
  decodeKeyBundle,
  encodeKeyBundle,
  generateIdentity,
  keysTopic,
  mls,
  open,
  signSealedSenderKey,
  userIdToHex,
  type InnerPayload,
} from '../../framework/relay/index.js';
import { RawMqtt, nowSeconds, powEnvelope, signedBundle, type Recipient } from '../support/attacker.js';
import { DAY, POW_BITS, useDropsVictim } from '../support/drops-victim.js';

const fixture = useDropsVictim();
// The clients exist from the fixture's beforeAll on; bound to names here once they do.
const { prefix, victimStore, dropDelta, bundleSettled, expectDropped } = fixture;
let ctx: mls.MlsContext;
let attacker: RawMqtt;
let victim: RelayClient;
let inbox: string;
let victimAddr: Recipient;
beforeAll(() => {
  ({ ctx, attacker, victim, inbox, victimAddr } = fixture);
});

describe('Welcome replay', () => {
  function welcomeInner(
    sender: ReturnType<typeof generateIdentity>,
    created: mls.CreatedSession,
  ): InnerPayload {
    return {
      msgType: MSG_TYPE.welcome,
      senderId: sender.userId,
      senderIdentityKey: sender.signingPublic,
      mls: created.welcome,
      ratchetTree: created.ratchetTree,
      sealedSenderKey: sender.sealPublic,
      sealedSenderKeySignature: signSealedSenderKey(sender),
    };
  }

  test('a Welcome accepted once, re-sent in a fresh envelope with fresh PoW → welcome_replay', async () => {
    const mallory = generateIdentity();
    const keys = keysTopic(prefix, victim.identity.userId);
    await attacker.watch(keys);
    const kp = decodeKeyBundle(await attacker.nth(keys, 1)).keyPackage;
    const inner = welcomeInner(mallory, await mls.createOneToOne(ctx, mallory, kp));

    // Positive control: the first copy founds a session.
    const joined = new Promise<string>((resolve) => victim.once('session', (s) => resolve(s.peer)));
    await attacker.publish(inbox, (await powEnvelope(victimAddr, inner, POW_BITS)).bytes);
    expect(await joined).toBe(userIdToHex(mallory.userId));
    await bundleSettled();

    await expectDropped((await powEnvelope(victimAddr, inner, POW_BITS)).bytes, 'welcome_replay');
  });

  test("the live peer's captured Welcome, re-sealed with fresh PoW → welcome_replay", async () => {
    const first = decodeEnvelope(attacker.captured(inbox)[0]!);
    expect(first.access).toBeUndefined();
    const inner = decodeInnerPayload(
      await open({
        // The secret comes from the victim's store: RelayClient.identity does not expose it.
        recipientSealSecret: (await victimStore.loadIdentity())!.sealSecret,
        recipientId: victim.identity.userId,
        enc: first.enc,
        ciphertext: first.ciphertext,
        sentAt: first.sentAt,
      }),
    );
    expect(inner.msgType).toBe(MSG_TYPE.welcome);

    await expectDropped((await powEnvelope(victimAddr, inner, POW_BITS)).bytes, 'welcome_replay');
  });
});

describe('key bundles (verifyPeer)', () => {
  /** verifyPeer must reject with a typed error, count one bundle_invalid and store nothing. */
  async function expectRejected(
    peerHex: string,
    errorType: typeof VerificationError | typeof ProtocolError,
    message: RegExp,
  ): Promise<void> {
    const before = victimStore.dump();
    const drops = victim.drops.snapshot();
    const error = await victim.verifyPeer(peerHex).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RelayError);
    expect(error).toBeInstanceOf(errorType);
    expect((error as Error).message).toMatch(message);
    expect(dropDelta(drops)).toEqual({ bundle_invalid: 1 });
    expect(victimStore.dump()).toBe(before);
  }

  async function withRetained(topics: string[], body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } finally {
      for (const t of topics) await attacker.clearRetained(t);
    }
  }

  test('bad signature → bundle_invalid; the correctly signed bundle is then accepted', async () => {
    const x = generateIdentity();
    const xHex = userIdToHex(x.userId);
    const topic = keysTopic(prefix, x.userId);
    const good = await signedBundle(ctx, x, { issuedAt: nowSeconds() });
    const signature = good.signature.slice();
    signature[10]! ^= 0x80;
    await withRetained([topic], async () => {
      await attacker.publish(topic, encodeKeyBundle({ ...good, signature }), { retain: true });
      await expectRejected(xHex, VerificationError, /signature does not verify/);
      expect(await victimStore.getPeer(xHex)).toBeUndefined();

      await attacker.publish(topic, encodeKeyBundle(good), { retain: true });
      await expect(victim.verifyPeer(xHex)).resolves.toMatchObject({ userId: xHex, powBits: POW_BITS });
      expect((await victimStore.getPeer(xHex))?.bundleIssuedAt).toBe(good.issuedAt);
    });
  });

  test("user X's valid bundle on user Y's topic → bundle_invalid; on X's own topic it is accepted", async () => {
    const x = generateIdentity();
    const y = generateIdentity();
    const bytes = encodeKeyBundle(await signedBundle(ctx, x, { issuedAt: nowSeconds() }));
    const xTopic = keysTopic(prefix, x.userId);
    const yTopic = keysTopic(prefix, y.userId);
    await withRetained([xTopic, yTopic], async () => {
      await attacker.publish(yTopic, bytes, { retain: true });
      await expectRejected(
        userIdToHex(y.userId),
        VerificationError,
        /credential identity is not the topic's user id/,
      );
      expect(await victimStore.getPeer(userIdToHex(y.userId))).toBeUndefined();

      await attacker.publish(xTopic, bytes, { retain: true });
      await expect(victim.verifyPeer(userIdToHex(x.userId))).resolves.toMatchObject({
        userId: userIdToHex(x.userId),
      });
    });
  });

  test('an older issued_at than the accepted one, properly signed → bundle_invalid', async () => {
    const x = generateIdentity();
    const xHex = userIdToHex(x.userId);
    const topic = keysTopic(prefix, x.userId);
    const t = nowSeconds();
    await withRetained([topic], async () => {
      // Positive control: issued_at T is accepted and recorded.
      await attacker.publish(topic, encodeKeyBundle(await signedBundle(ctx, x, { issuedAt: t })), {
        retain: true,
      });
      await victim.verifyPeer(xHex);
      expect((await victimStore.getPeer(xHex))?.bundleIssuedAt).toBe(t);

      const older = await signedBundle(ctx, x, { issuedAt: t - 100, kpNow: t });
      await attacker.publish(topic, encodeKeyBundle(older), { retain: true });
      await expectRejected(xHex, ProtocolError, /older than the accepted/);
      expect((await victimStore.getPeer(xHex))?.bundleIssuedAt).toBe(t);
    });
  });

  test('an expired KeyPackage (generated 40 days ago) → bundle_invalid; a fresh one is accepted', async () => {
    const x = generateIdentity();
    const xHex = userIdToHex(x.userId);
    const topic = keysTopic(prefix, x.userId);
    const now = nowSeconds();
    await withRetained([topic], async () => {
      const expired = await signedBundle(ctx, x, { issuedAt: now, kpNow: now - 40 * DAY });
      await attacker.publish(topic, encodeKeyBundle(expired), { retain: true });
      await expectRejected(xHex, VerificationError, /lifetime is not current/);
      expect(await victimStore.getPeer(xHex)).toBeUndefined();

      await attacker.publish(topic, encodeKeyBundle(await signedBundle(ctx, x, { issuedAt: now + 1 })), {
        retain: true,
      });
      await expect(victim.verifyPeer(xHex)).resolves.toMatchObject({ userId: xHex });
    });
  });
});
