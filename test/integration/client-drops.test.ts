/**
 * Hostile inputs against a live RelayClient through a real broker (PROTOCOL.md §4, §5, §6, §10):
 * every case must end in one specific drop counter, no 'message' event and an unchanged store.
 * Each negative case is paired with a positive control where one is meaningful: the same crafted
 * input without the defect is accepted (usually after the hostile one, which also shows the hostile
 * one consumed nothing), so a broken harness cannot pass silently.
 *
 * One victim and one peer with an established 1:1 session are shared by all tests; the attacker is
 * a raw MQTT connection that also records what the peer publishes to the victim's inbox.
 */
import { randomBytes } from 'node:crypto';
import {
  DROP_REASONS,
  MemoryRelayStore,
  MSG_TYPE,
  ProtocolError,
  RelayClient,
  RelayError,
  VerificationError,
  decodeEnvelope,
  decodeInnerPayload,
  decodeKeyBundle,
  encodeContent,
  encodeEnvelope,
  encodeKeyBundle,
  generateIdentity,
  inboxTopic,
  keysTopic,
  leadingZeroBits,
  mls,
  open,
  powChallenge,
  powHash,
  signSealedSenderKey,
  userIdToHex,
  verifyPow,
  type DropReason,
  type InnerPayload,
  type ReceivedMessage,
  type SealedEnvelope,
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
  signedBundle,
  type Recipient,
} from '../support/attacker.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';

const POW_BITS = 18;
const EVENT_TIMEOUT_MS = 20_000;
const DAY = 86_400;

let broker: TestBroker;
let ctx: mls.MlsContext;
let attacker: RawMqtt;
const prefix = uniqueName('drops');
const victimStore = new MemoryRelayStore();
const peerStore = new MemoryRelayStore();
let victim: RelayClient;
let peer: RelayClient;
let forger: SessionForger;
let inbox: string;
let victimAddr: Recipient;
const received: ReceivedMessage[] = [];
const securityEvents: Array<{ kind: string; claimedSender: string }> = [];

async function startClient(store: MemoryRelayStore): Promise<RelayClient> {
  const client = await RelayClient.create({
    store,
    broker: { url: broker.url, clientId: uniqueName('drops-client'), sessionExpirySeconds: 0 },
    topicPrefix: prefix,
    powBits: POW_BITS,
  });
  await client.start();
  return client;
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + EVENT_TIMEOUT_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function nextDrop(): Promise<{ reason: DropReason; topic: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      victim.off('drop', onDrop);
      reject(new Error('no drop event'));
    }, EVENT_TIMEOUT_MS);
    const onDrop = (d: { reason: DropReason; topic: string }): void => {
      clearTimeout(timer);
      victim.off('drop', onDrop);
      resolve(d);
    };
    victim.on('drop', onDrop);
  });
}

function dropDelta(before: Record<DropReason, number>): Partial<Record<DropReason, number>> {
  const now = victim.drops.snapshot();
  const out: Partial<Record<DropReason, number>> = {};
  for (const r of DROP_REASONS) if (now[r] !== before[r]) out[r] = now[r] - before[r];
  return out;
}

/** The victim's current bundle is unconsumed: the republish after a Welcome has landed in the store. */
async function bundleSettled(): Promise<void> {
  await until(async () => {
    const own = await victimStore.loadOwnBundle();
    const kp = (await victimStore.listKeyPackages()).find((k) => k.ref === own?.keyPackageRef);
    return kp !== undefined && kp.consumedAt === undefined;
  }, "the victim's fresh bundle");
}

/**
 * Publishes hostile bytes to the victim's inbox and checks the outcome: exactly one drop with
 * `reason`, nothing else counted, no message, and not one byte of stored state changed.
 */
async function expectDropped(bytes: Uint8Array, reason: DropReason): Promise<void> {
  const before = victimStore.dump();
  const drops = victim.drops.snapshot();
  const messages = received.length;
  const dropped = nextDrop();
  await attacker.publish(inbox, bytes);
  const d = await dropped;
  expect(d).toEqual({ reason, topic: inbox });
  expect(dropDelta(drops)).toEqual({ [reason]: 1 });
  expect(victim.drops.get(reason)).toBe(drops[reason] + 1);
  expect(received.length).toBe(messages);
  expect(victimStore.dump()).toBe(before);
}

/** Positive control: the bytes are accepted and delivered as a message from the peer. */
async function expectDelivered(bytes: Uint8Array, text: string): Promise<void> {
  const drops = victim.drops.snapshot();
  await attacker.publish(inbox, bytes);
  await until(() => received.some((m) => m.content.content === text), `delivery of "${text}"`);
  const got = received.find((m) => m.content.content === text)!;
  expect(got.from).toBe(peer.userId);
  expect(dropDelta(drops)).toEqual({});
}

/** A genuine MLS message from the peer, with correct sender fields (not yet sealed). */
async function genuineInner(text: string): Promise<InnerPayload> {
  return messageInner(peer.identity, await forger.applicationMessage(text));
}

function withNonce(e: Omit<SealedEnvelope, 'powNonce'>, powNonce: bigint): Uint8Array {
  return encodeEnvelope({ ...e, powNonce });
}

beforeAll(async () => {
  broker = await getTestBroker();
  ctx = await mls.createMlsContext();
  attacker = await RawMqtt.connect(broker.url);
  victim = await startClient(victimStore);
  peer = await startClient(peerStore);
  inbox = inboxTopic(prefix, victim.identity.userId);
  victimAddr = { userId: victim.identity.userId, sealPublic: victim.identity.sealPublic };
  victim.on('message', (m) => received.push(m));
  victim.on('security', (e) => securityEvents.push(e));
  // The attacker sees everything published to the victim's inbox from here on.
  await attacker.watch(inbox);
  forger = new SessionForger(ctx, peerStore, victim.userId);

  // A legitimate session: Welcome with PoW, then a message with an access token.
  await peer.send(victim.userId, 'hello');
  await until(() => received.length === 1, 'the first message');
  await bundleSettled();
  expect(victim.drops.total()).toBe(0);
  expect(await victim.sessionWith(peer.userId)).toBeDefined();
});

afterAll(async () => {
  await Promise.all([victim?.stop(), peer?.stop()]);
  await attacker?.close();
  await broker?.close();
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
