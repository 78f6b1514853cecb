/**
 * The whole inbound pipeline under the fuzzer: a real RelayClient (fixed identity, MemoryRelayStore,
 * PoW 0 bits so mutated envelopes get past the PoW check) connected to an in-process embedded
 * broker. Inputs are handed to the client's inbox handler directly, as the transport would, and
 * the outcome is what the client reports: a drop reason, a message, or nothing. The handler must
 * never throw: every bad input ends in a drop.
 */
import { pino } from 'pino';
import {
  MemoryRelayStore,
  MSG_TYPE,
  RelayClient,
  asGroupId,
  encodeContent,
  encodeEnvelope,
  encodeGroupPayload,
  encodeInnerPayload,
  generateIdentity,
  groupTopic,
  inboxTopic,
  mls,
  seal,
  signSealedSenderKey,
  startEmbeddedBroker,
  topicIdForGroup,
  type InboundMessage,
  type InnerPayload,
  type UnixSeconds,
} from '../../framework/relay/index.js';

export interface Pipeline {
  /** InnerPayloads a genuine peer would send first: its Welcome, then two messages. */
  genuineInners(): Promise<InnerPayload[]>;
  /** The bytes as the inbox MQTT payload. */
  deliver(payload: Uint8Array): Promise<string>;
  /** The bytes as an InnerPayload plaintext, sealed to the client now (PoW 0 bits). */
  sealAndDeliver(plaintext: Uint8Array): Promise<string>;
  /** GroupPayloads a genuine member of the client's group sent (two application messages). */
  readonly groupPayloads: readonly Uint8Array[];
  /** The bytes as a payload on the topic of a group the client is in. */
  deliverToGroup(payload: Uint8Array): Promise<string>;
  close(): Promise<void>;
}

/** The private inbox handler the transport calls; reached through a cast on purpose. */
interface TransportHandler {
  onTransportMessage(m: InboundMessage): Promise<void>;
}

export async function startPipeline(): Promise<Pipeline> {
  const broker = await startEmbeddedBroker({ port: 0 });
  const store = new MemoryRelayStore();
  const client = await RelayClient.create({
    store,
    broker: { url: broker.url, sessionExpirySeconds: 0 },
    topicPrefix: 'fuzz',
    powBits: 0,
    logger: pino({ level: 'silent' }),
    welcomeQuota: { perSenderPerMinute: 1_000_000, totalPerMinute: 1_000_000 },
  });
  await client.start();
  const inbox = inboxTopic('fuzz', client.identity.userId);
  let outcome = 'none';
  client.on('drop', (d) => (outcome = `drop:${d.reason}`));
  client.on('message', () => (outcome = 'message'));
  // The client reports failures it cannot attribute to one input as 'error' events: during a run
  // each is a finding of the input that caused it; after close() they are shutdown noise.
  const errors: Error[] = [];
  let closed = false;
  client.on('error', (e) => {
    if (!closed) errors.push(e);
  });
  // The client's inbound router, as the transport calls it (private: the fuzzer bypasses the broker).
  const handler = (client as unknown as { router: TransportHandler }).router;

  async function deliver(payload: Uint8Array, topic = inbox): Promise<string> {
    outcome = 'none';
    await handler.onTransportMessage({
      topic,
      payload,
      properties: {},
      dup: false,
      retain: false,
      qos: 1,
    });
    const error = errors.shift();
    if (error) throw error;
    return outcome;
  }

  async function sealAndDeliver(plaintext: Uint8Array): Promise<string> {
    const sentAt = Math.floor(Date.now() / 1000) as UnixSeconds;
    const sealed = await seal({
      recipientId: client.identity.userId,
      recipientSealKey: client.identity.sealPublic,
      plaintext,
      sentAt,
    });
    return deliver(encodeEnvelope({ ...sealed, powNonce: 0n, sentAt }));
  }

  const group = await joinOutsidersGroup(store, sealAndDeliver);
  const topic = groupTopic('fuzz', topicIdForGroup(asGroupId(group.groupId)));

  return {
    groupPayloads: group.payloads,
    deliverToGroup: (payload) => deliver(payload, topic),
    async genuineInners() {
      const ctx = await mls.createMlsContext();
      const kp = await ownKeyPackage(store);
      const peer = generateIdentity();
      const created = await mls.createOneToOne(ctx, peer, kp.keyPackage);
      const m1 = await mls.encryptApplication(ctx, created.state, encodeContent({ content: 'hi' }));
      const m2 = await mls.encryptApplication(ctx, m1.state, encodeContent({ content: '/echo x', id: 'a' }));
      const from = { senderId: peer.userId, senderIdentityKey: peer.signingPublic };
      return [
        {
          ...from,
          msgType: MSG_TYPE.welcome,
          mls: created.welcome,
          ratchetTree: created.ratchetTree,
          sealedSenderKey: peer.sealPublic,
          sealedSenderKeySignature: signSealedSenderKey(peer),
        },
        { ...from, msgType: MSG_TYPE.message, mls: m1.message },
        { ...from, msgType: MSG_TYPE.message, mls: m2.message },
      ];
    },
    deliver: (payload) => deliver(payload),
    sealAndDeliver,
    async close() {
      closed = true;
      await client.stop();
      await broker.close();
    },
  };
}

async function ownKeyPackage(store: MemoryRelayStore): Promise<{ ref: string; keyPackage: Uint8Array }> {
  const own = await store.loadOwnBundle();
  const kp = (await store.listKeyPackages()).find((k) => k.ref === own?.keyPackageRef);
  if (!kp) throw new Error('the client has no published KeyPackage');
  return kp;
}

/**
 * Puts the client in a group of an outsider's making (a genuine group Welcome, sealed and handed
 * in like any other), waits for the fresh bundle it publishes after joining (so the 1:1 seeds use
 * an unconsumed KeyPackage), and returns two application messages of that group as GroupPayloads.
 */
async function joinOutsidersGroup(
  store: MemoryRelayStore,
  sealAndDeliver: (plaintext: Uint8Array) => Promise<string>,
): Promise<{ groupId: Uint8Array; payloads: Uint8Array[] }> {
  const ctx = await mls.createMlsContext();
  const now = Math.floor(Date.now() / 1000);
  const kp = await ownKeyPackage(store);
  const owner = generateIdentity();
  const created = await mls.createGroup(ctx, owner, { now });
  const commit = await mls.commitGroup(ctx, created.state, { adds: [kp.keyPackage], now });
  const welcome: InnerPayload = {
    msgType: MSG_TYPE.groupWelcome,
    senderId: owner.userId,
    senderIdentityKey: owner.signingPublic,
    mls: commit.welcome!,
    ratchetTree: commit.ratchetTree,
    sealedSenderKey: owner.sealPublic,
    sealedSenderKeySignature: signSealedSenderKey(owner),
  };
  const outcome = await sealAndDeliver(encodeInnerPayload(welcome));
  if (outcome !== 'none') throw new Error(`the genuine group Welcome was not accepted: ${outcome}`);
  const deadline = Date.now() + 15_000;
  while ((await ownKeyPackage(store).catch(() => kp)).ref === kp.ref) {
    if (Date.now() > deadline) throw new Error('no fresh bundle after joining the group');
    await new Promise((r) => setTimeout(r, 20));
  }
  const m1 = await mls.encryptApplication(
    ctx,
    commit.state,
    encodeContent({ content: 'hi all' }, { padTo: 256 }),
  );
  const m2 = await mls.encryptApplication(
    ctx,
    m1.state,
    encodeContent({ content: '/echo@bot x', id: 'g1' }, { padTo: 256 }),
  );
  return {
    groupId: mls.groupIdOf(commit.state),
    payloads: [encodeGroupPayload(m1.message), encodeGroupPayload(m2.message)],
  };
}
