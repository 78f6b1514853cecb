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
  encodeContent,
  encodeEnvelope,
  generateIdentity,
  inboxTopic,
  mls,
  seal,
  signSealedSenderKey,
  startEmbeddedBroker,
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
  const handler = client as unknown as TransportHandler;

  async function deliver(payload: Uint8Array): Promise<string> {
    outcome = 'none';
    await handler.onTransportMessage({
      topic: inbox,
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

  return {
    async genuineInners() {
      const ctx = await mls.createMlsContext();
      const own = await store.loadOwnBundle();
      const kp = (await store.listKeyPackages()).find((k) => k.ref === own?.keyPackageRef);
      if (!kp) throw new Error('the client has no published KeyPackage');
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
    deliver,
    async sealAndDeliver(plaintext) {
      const sentAt = Math.floor(Date.now() / 1000) as UnixSeconds;
      const sealed = await seal({
        recipientId: client.identity.userId,
        recipientSealKey: client.identity.sealPublic,
        plaintext,
        sentAt,
      });
      return deliver(encodeEnvelope({ ...sealed, powNonce: 0n, sentAt }));
    },
    async close() {
      closed = true;
      await client.stop();
      await broker.close();
    },
  };
}
