/**
 * GROUP_REJOIN version 2 (PROTOCOL.md §9) against live clients on the real broker: while a member
 * waits for the answer to its rejoin request, a group Welcome for a group it is in is accepted only
 * as that answer. An outsider that builds its own group under the member's group id, around the
 * member's public KeyPackage, must not take the member over.
 */
import {
  decodeGroupPayload,
  decodeKeyBundle,
  encodeGroupPayload,
  fromHex,
  generateIdentity,
  inboxTopic,
  keysTopic,
  MemoryRelayStore,
  mls,
  MSG_TYPE,
  signSealedSenderKey,
  userIdFromHex,
  type Identity,
} from '../../framework/relay/index.js';
import { powEnvelope, RawMqtt } from '../support/attacker.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import {
  converged,
  GROUP_TEST_POW_BITS,
  groupTexts,
  GroupWorld,
  until,
  type Member,
} from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;
let committer: Member;
let friend: Member;
let victim: Member;
let victimStore: MemoryRelayStore;
let raw: RawMqtt;

beforeAll(async () => {
  broker = await getTestBroker();
  world = new GroupWorld(broker.url);
  [committer, friend] = await Promise.all([world.start(), world.start()]);
  victimStore = new MemoryRelayStore();
  victim = await world.start(victimStore);
  raw = await RawMqtt.connect(broker.url);
});

afterAll(async () => {
  await raw.close();
  await world.close();
  await broker.close();
});

const topicOf = (topicId: string) => `${world.prefix}/g/${topicId}/m`;

/** The victim's group bookkeeping as stored (JSON beside the MLS state). */
async function victimMeta(groupId: string): Promise<Record<string, unknown>> {
  return JSON.parse((await victimStore.getGroup(groupId))!.meta) as Record<string, unknown>;
}

/** Publishes a copy of the newest application message on `topic` with a forged clear epoch. */
async function forgeFutureEpoch(topic: string, epoch: bigint): Promise<void> {
  await until(() =>
    raw.captured(topic).some((p) => mls.peekHeader(decodeGroupPayload(p)).contentType === 'application'),
  );
  const apps = raw
    .captured(topic)
    .map((p) => decodeGroupPayload(p))
    .filter((m) => mls.peekHeader(m).contentType === 'application');
  const future = new Uint8Array(apps[apps.length - 1]!);
  // MLSMessage header: version(2) wire_format(2) group_id(1 + 32) then the u64 epoch in the clear.
  new DataView(future.buffer).setBigUint64(37, epoch);
  await raw.publish(topic, encodeGroupPayload(future));
}

/**
 * The hijacker's Welcome: its own group under `groupId`, built around the victim's KeyPackage from
 * its retained bundle, signed by the hijacker and sealed to the victim with PoW as any inviter would.
 */
async function hijackWelcome(hijacker: Identity, groupId: string): Promise<Uint8Array> {
  const keys = keysTopic(world.prefix, userIdFromHex(victim.client.userId));
  const watcher = await RawMqtt.connect(broker.url);
  let bundleBytes: Uint8Array;
  try {
    await watcher.watch(keys);
    bundleBytes = await watcher.nth(keys, 1);
  } finally {
    await watcher.close();
  }
  const bundle = decodeKeyBundle(bundleBytes);
  const ctx = await mls.createMlsContext();
  const own = await mls.createGroup(ctx, hijacker, { groupId: fromHex(groupId) });
  const commit = await mls.commitGroup(ctx, own.state, { adds: [bundle.keyPackage] });
  const { bytes } = await powEnvelope(
    { userId: userIdFromHex(victim.client.userId), sealPublic: bundle.sealedSenderKey },
    {
      msgType: MSG_TYPE.groupWelcome,
      senderId: hijacker.userId,
      senderIdentityKey: hijacker.signingPublic,
      mls: commit.welcome!,
      ratchetTree: commit.ratchetTree!,
      sealedSenderKey: hijacker.sealPublic,
      sealedSenderKeySignature: signSealedSenderKey(hijacker),
    },
    GROUP_TEST_POW_BITS,
  );
  return bytes;
}

test('during its rejoin window a member does not switch to an outsider’s group under its group id', async () => {
  const g = await committer.client.createGroup([victim.client.userId, friend.client.userId]);
  const topic = topicOf(g.topicId);
  await raw.watch(topic);
  await until(() => converged([committer, victim, friend], g.groupId));
  await committer.client.sendToGroup(g.groupId, 'before');
  await until(() => groupTexts(victim, g.groupId).includes('before'));

  // A forged clear epoch makes the victim ask the committer to re-add it: the rejoin window opens.
  await forgeFutureEpoch(topic, 1n << 40n);
  await until(async () => (await victimMeta(g.groupId)).rejoinRequestedAt !== undefined, 20_000, 'asked');
  await until(() => converged([committer, victim, friend], g.groupId));
  const before = await victimStore.getGroup(g.groupId);
  const dropped = victim.client.drops.get('group_duplicate');

  const hijacker = generateIdentity();
  await raw.publish(
    inboxTopic(world.prefix, userIdFromHex(victim.client.userId)),
    await hijackWelcome(hijacker, g.groupId),
  );
  await until(() => victim.client.drops.get('group_duplicate') > dropped, 20_000, 'group_duplicate');

  const after = await victimStore.getGroup(g.groupId);
  expect(Buffer.from(after!.state).equals(Buffer.from(before!.state))).toBe(true);
  expect(after!.epoch).toBe(before!.epoch);
  const info = (await victim.client.group(g.groupId))!;
  expect(info.committer).toBe(committer.client.userId);
  expect(victim.events.filter((e) => e.kind === 'rejoined')).toHaveLength(0);
  // Still a working member of the real group.
  await friend.client.sendToGroup(g.groupId, 'after');
  await until(() => groupTexts(victim, g.groupId).includes('after'));
});
