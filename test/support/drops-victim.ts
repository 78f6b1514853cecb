/**
 * The shared victim of the client-drops tests (test/integration/client-drops*.test.ts): a live
 * RelayClient with an established 1:1 session to a peer, a raw MQTT attacker, and the checks that
 * hostile bytes end in exactly one drop counter, no message and an unchanged store.
 */
import {
  DROP_REASONS,
  MemoryRelayStore,
  RelayClient,
  encodeEnvelope,
  inboxTopic,
  mls,
  type DropReason,
  type InnerPayload,
  type ReceivedMessage,
  type SealedEnvelope,
} from '../../framework/relay/index.js';
import { RawMqtt, SessionForger, messageInner, type Recipient } from './attacker.js';
import { getTestBroker, uniqueName, type TestBroker } from './broker.js';

export const POW_BITS = 18;
export const EVENT_TIMEOUT_MS = 20_000;
export const DAY = 86_400;

export interface DropsVictim {
  /** Set in beforeAll: broker, MLS context, raw attacker, both clients, forger, inbox topic, address. */
  readonly broker: TestBroker;
  readonly ctx: mls.MlsContext;
  readonly attacker: RawMqtt;
  readonly victim: RelayClient;
  readonly peer: RelayClient;
  readonly forger: SessionForger;
  readonly inbox: string;
  readonly victimAddr: Recipient;
  /** The topic prefix, the two stores and what the victim reported, fixed for the file. */
  readonly prefix: string;
  readonly victimStore: MemoryRelayStore;
  readonly peerStore: MemoryRelayStore;
  readonly received: ReceivedMessage[];
  readonly securityEvents: Array<{ kind: string; claimedSender: string }>;
  startClient(store: MemoryRelayStore): Promise<RelayClient>;
  until(cond: () => boolean | Promise<boolean>, what: string): Promise<void>;
  nextDrop(): Promise<{ reason: DropReason; topic: string }>;
  dropDelta(before: Record<DropReason, number>): Partial<Record<DropReason, number>>;
  bundleSettled(): Promise<void>;
  expectDropped(bytes: Uint8Array, reason: DropReason): Promise<void>;
  expectDelivered(bytes: Uint8Array, text: string): Promise<void>;
  genuineInner(text: string): Promise<InnerPayload>;
  withNonce(e: Omit<SealedEnvelope, 'powNonce'>, powNonce: bigint): Uint8Array;
}

/**
 * Registers the beforeAll/afterAll of one test file: one victim and one peer with an established
 * 1:1 session (a Welcome with PoW, then a message with an access token), and an attacker that is a
 * raw MQTT connection recording what is published to the victim's inbox.
 */
export function useDropsVictim(): DropsVictim {
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

  return {
    get broker() {
      return broker;
    },
    get ctx() {
      return ctx;
    },
    get attacker() {
      return attacker;
    },
    get victim() {
      return victim;
    },
    get peer() {
      return peer;
    },
    get forger() {
      return forger;
    },
    get inbox() {
      return inbox;
    },
    get victimAddr() {
      return victimAddr;
    },
    prefix,
    victimStore,
    peerStore,
    received,
    securityEvents,
    startClient,
    until,
    nextDrop,
    dropDelta,
    bundleSettled,
    expectDropped,
    expectDelivered,
    genuineInner,
    withNonce,
  };
}
