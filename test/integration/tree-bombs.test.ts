/**
 * Ratchet-tree bombs through a real broker (PROTOCOL.md §10, issue 10 hole 4). An outsider who read
 * the victim's public KeyPackage builds a valid 1:1 Welcome, then swaps in a tree whose parent node
 * lists one leaf ~65,000 times in unmerged_leaves, sealed with PoW in a 256 KiB envelope. ts-mls
 * 1.6.4 checks those lists pairwise (n² steps) after the GroupInfo signature verified, so without
 * bounds the victim's event loop is stuck for as long as that takes. With bounds it is a
 * `welcome_invalid` drop in milliseconds. The printed time is informational: the assertion only
 * says "under 2 s", far from the old code's figure and far above the new one.
 */
import {
  MemoryRelayStore,
  MSG_TYPE,
  RelayClient,
  decodeKeyBundle,
  generateIdentity,
  inboxTopic,
  keysTopic,
  mls,
  signSealedSenderKey,
  userIdToHex,
  type DropReason,
  type InnerPayload,
} from '../../framework/relay/index.js';
import { RawMqtt, powEnvelope, type Recipient } from '../support/attacker.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { bombTree } from '../support/tree-bomb.js';

const POW_BITS = 12;
const ENVELOPE_LIMIT = 256 * 1024;
/** How long the old code may take before the drop is given up on (it took far longer than 2 s). */
const OLD_CODE_PATIENCE_MS = 600_000;

let broker: TestBroker;
let ctx: mls.MlsContext;
let attacker: RawMqtt;
const prefix = uniqueName('bombs');
const victimStore = new MemoryRelayStore();
let victim: RelayClient;
let inbox: string;
let victimAddr: Recipient;

beforeAll(async () => {
  broker = await getTestBroker();
  ctx = await mls.createMlsContext();
  attacker = await RawMqtt.connect(broker.url);
  victim = await RelayClient.create({
    store: victimStore,
    broker: { url: broker.url, clientId: uniqueName('bombs-victim'), sessionExpirySeconds: 0 },
    topicPrefix: prefix,
    powBits: POW_BITS,
  });
  await victim.start();
  inbox = inboxTopic(prefix, victim.identity.userId);
  victimAddr = { userId: victim.identity.userId, sealPublic: victim.identity.sealPublic };
});

afterAll(async () => {
  await victim?.stop();
  await attacker?.close();
  await broker?.close();
});

function welcomeInner(
  sender: ReturnType<typeof generateIdentity>,
  welcome: Uint8Array,
  ratchetTree: Uint8Array,
): InnerPayload {
  return {
    msgType: MSG_TYPE.welcome,
    senderId: sender.userId,
    senderIdentityKey: sender.signingPublic,
    mls: welcome,
    ratchetTree,
    sealedSenderKey: sender.sealPublic,
    sealedSenderKeySignature: signSealedSenderKey(sender),
  };
}

/** The largest bomb that still fits one envelope: ~4 bytes of envelope per unmerged entry. */
async function largestBombEnvelope(
  inner: (tree: Uint8Array) => InnerPayload,
  tree: Uint8Array,
  to: Recipient = victimAddr,
) {
  const base = (await powEnvelope(to, inner(tree), POW_BITS)).bytes.length;
  // Room for the list's length prefix and the InnerPayload's padding to a multiple of 256 bytes.
  const entries = Math.floor((ENVELOPE_LIMIT - base - 300) / 4);
  const bytes = (await powEnvelope(to, inner(bombTree(tree, entries)), POW_BITS)).bytes;
  return { bytes, entries };
}

function nextDrop(timeoutMs: number, client: RelayClient = victim): Promise<DropReason> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no drop event')), timeoutMs);
    client.once('drop', (d: { reason: DropReason }) => {
      clearTimeout(timer);
      resolve(d.reason);
    });
  });
}

test(
  'a 256 KiB 1:1 Welcome whose tree lists one leaf ~65,000 times in unmerged_leaves → welcome_invalid in milliseconds',
  async () => {
    const mallory = generateIdentity();
    const keys = keysTopic(prefix, victim.identity.userId);
    await attacker.watch(keys);
    const kp = decodeKeyBundle(await attacker.nth(keys, 1)).keyPackage;
    const created = await mls.createOneToOne(ctx, mallory, kp);
    const inner = (tree: Uint8Array) => welcomeInner(mallory, created.welcome, tree);
    const { bytes, entries } = await largestBombEnvelope(inner, created.ratchetTree);
    expect(bytes.length).toBeLessThanOrEqual(ENVELOPE_LIMIT);
    expect(bytes.length).toBeGreaterThan(ENVELOPE_LIMIT - 1024);

    const before = victimStore.dump();
    const dropped = nextDrop(OLD_CODE_PATIENCE_MS);
    const started = performance.now();
    await attacker.publish(inbox, bytes);
    const reason = await dropped;
    const elapsedMs = performance.now() - started;
    console.log(
      `tree bomb: ${bytes.length}-byte envelope, ${entries} unmerged_leaves entries, ` +
        `dropped as ${reason} ${elapsedMs.toFixed(1)} ms after publishing`,
    );
    expect(reason).toBe('welcome_invalid');
    expect(victimStore.dump()).toBe(before);
    expect(await victim.sessionWith(userIdToHex(mallory.userId))).toBeUndefined();
    expect(elapsedMs).toBeLessThan(2_000);

    // Positive control: the same Welcome with its genuine tree founds a session, so the drop above
    // was the tree's doing and the bomb consumed nothing (no replay record, no KeyPackage).
    const joined = new Promise<string>((resolve) => victim.once('session', (s) => resolve(s.peer)));
    await attacker.publish(
      inbox,
      (await powEnvelope(victimAddr, inner(created.ratchetTree), POW_BITS)).bytes,
    );
    expect(await joined).toBe(userIdToHex(mallory.userId));
  },
  OLD_CODE_PATIENCE_MS + 60_000,
);

test(
  'a 256 KiB group Welcome whose tree lists one leaf ~65,000 times → welcome_invalid in milliseconds',
  async () => {
    const store = new MemoryRelayStore();
    const member = await RelayClient.create({
      store,
      broker: { url: broker.url, clientId: uniqueName('bombs-member'), sessionExpirySeconds: 0 },
      topicPrefix: prefix,
      powBits: POW_BITS,
    });
    await member.start();
    try {
      const to: Recipient = { userId: member.identity.userId, sealPublic: member.identity.sealPublic };
      const mallory = generateIdentity();
      const keys = keysTopic(prefix, member.identity.userId);
      await attacker.watch(keys);
      const kp = decodeKeyBundle(await attacker.nth(keys, 1)).keyPackage;
      const now = Math.floor(Date.now() / 1000);
      const group = await mls.createGroup(ctx, mallory, { now });
      const commit = await mls.commitGroup(ctx, group.state, { adds: [kp], now });
      const inner = (tree: Uint8Array): InnerPayload => ({
        ...welcomeInner(mallory, commit.welcome!, tree),
        msgType: MSG_TYPE.groupWelcome,
      });
      const { bytes, entries } = await largestBombEnvelope(inner, commit.ratchetTree, to);
      expect(bytes.length).toBeLessThanOrEqual(ENVELOPE_LIMIT);

      const before = store.dump();
      const dropped = nextDrop(OLD_CODE_PATIENCE_MS, member);
      const started = performance.now();
      await attacker.publish(inboxTopic(prefix, member.identity.userId), bytes);
      const reason = await dropped;
      const elapsedMs = performance.now() - started;
      console.log(
        `group tree bomb: ${bytes.length}-byte envelope, ${entries} unmerged_leaves entries, ` +
          `dropped as ${reason} ${elapsedMs.toFixed(1)} ms after publishing`,
      );
      expect(reason).toBe('welcome_invalid');
      expect(store.dump()).toBe(before);
      expect(await member.groups()).toEqual([]);
      expect(elapsedMs).toBeLessThan(2_000);

      // Positive control: the same group Welcome with its genuine tree is joined.
      const joined = new Promise<string>((resolve) =>
        member.on('group', (e) => {
          if (e.kind === 'joined') resolve(e.groupId);
        }),
      );
      await attacker.publish(
        inboxTopic(prefix, member.identity.userId),
        (await powEnvelope(to, inner(commit.ratchetTree), POW_BITS)).bytes,
      );
      expect(await joined).toHaveLength(64);
    } finally {
      await member.stop();
    }
  },
  OLD_CODE_PATIENCE_MS + 60_000,
);
