/**
 * Hostile group inputs against a live member (PROTOCOL.md §9, §10): each ends in its own drop
 * counter and leaves the victim's store exactly as it was, and each is paired with a control that
 * shows the same path accepting the input without the defect.
 */
import {
  decodeGroupPayload,
  encodeGroupPayload,
  generateIdentity,
  mls,
  type DropReason,
} from '../../framework/relay/index.js';
import { MemoryRelayStore } from '../../framework/relay/index.js';
import { cborMap, RawMqtt } from '../support/attacker.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { converged, groupTexts, GroupWorld, until, type Member } from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;
let committer: Member;
let friend: Member;
let stranger: Member;
let victim: Member;
let victimStore: MemoryRelayStore;
let raw: RawMqtt;

beforeAll(async () => {
  broker = await getTestBroker();
  world = new GroupWorld(broker.url);
  [committer, friend, stranger] = await Promise.all([world.start(), world.start(), world.start()]);
  victimStore = new MemoryRelayStore();
  victim = await world.start(victimStore, {
    groups: {
      allowInvitesFrom: [committer.client.userId, friend.client.userId],
      maxMembers: 4,
      commitDelayMs: 100,
    },
  });
  raw = await RawMqtt.connect(broker.url);
  if (process.env.DBG) {
    victim.client.on('drop', (d) => console.log('DROP', d.reason, d.topic));
    committer.client.on('drop', (d) => console.log('CDROP', d.reason, d.topic));
    victim.client.on('group', (e) => console.log('VGROUP', e.kind));
    victim.client.on('error', (e) => console.log('VERR', e.message));
    committer.client.on('error', (e) => console.log('CERR', e.message));
  }
});

afterAll(async () => {
  await raw.close();
  await world.close();
  await broker.close();
});

/** Runs `attack`, waits for the drop counter, and checks that nothing was stored. */
async function expectDropped(reason: DropReason, attack: () => Promise<unknown>): Promise<void> {
  const before = victimStore.dump();
  const count = victim.client.drops.get(reason);
  const messages = victim.messages.length;
  await attack();
  await until(() => victim.client.drops.get(reason) > count, 20_000, `drop ${reason}`);
  expect(changedParts(before, victimStore.dump())).toEqual([]);
  expect(victim.messages.length).toBe(messages);
}

/** The top-level parts of two store dumps that differ (whole dumps are too long to read). */
function changedParts(before: string, after: string): string[] {
  const [a, b] = [
    JSON.parse(before) as Record<string, unknown>,
    JSON.parse(after) as Record<string, unknown>,
  ];
  return Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/** After a join the victim publishes a fresh bundle; wait for that so it is not mistaken for a change. */
async function settled(): Promise<void> {
  await until(async () => {
    const bundle = await victimStore.loadOwnBundle();
    const kps = await victimStore.listKeyPackages();
    return kps.some((k) => k.ref === bundle?.keyPackageRef && k.consumedAt === undefined);
  });
}

/** The newest application message seen on the topic. */
async function lastApplication(topic: string): Promise<Uint8Array> {
  let found: Uint8Array | undefined;
  await until(() => {
    const apps = raw
      .captured(topic)
      .map((p) => decodeGroupPayload(p))
      .filter((m) => mls.peekHeader(m).contentType === 'application');
    found = apps[apps.length - 1];
    return found !== undefined;
  });
  return found!;
}

const topicOf = (topicId: string) => `${world.prefix}/g/${topicId}/m`;

test('a Welcome from a sender outside the allow-list is dropped; one from a friend is accepted', async () => {
  await expectDropped('group_invite_refused', () => stranger.client.createGroup([victim.client.userId]));
  const g = await friend.client.createGroup([victim.client.userId]);
  await until(() => victim.events.some((e) => e.kind === 'joined' && e.groupId === g.groupId));
});

test('a Welcome for a group larger than the cap is dropped; one at the cap is accepted', async () => {
  const extra = await Promise.all([world.start(), world.start(), world.start()]);
  await expectDropped('group_too_large', () =>
    committer.client.createGroup([victim, ...extra].map((m) => m.client.userId)),
  );
  const g = await committer.client.createGroup([victim, extra[0]!, extra[1]!].map((m) => m.client.userId));
  await until(() => victim.events.some((e) => e.kind === 'joined' && e.groupId === g.groupId));
});

describe('on the topic of a group the victim is in', () => {
  let groupId: string;
  let topic: string;
  /** The outsider's commit: never accepted, so never recorded as processed. */
  let forgedCommit: Uint8Array;

  beforeAll(async () => {
    const g = await committer.client.createGroup([victim.client.userId, friend.client.userId]);
    groupId = g.groupId;
    topic = topicOf(g.topicId);
    await raw.watch(topic);
    await until(() => victim.events.some((e) => e.kind === 'joined' && e.groupId === groupId));
    await until(() => friend.events.some((e) => e.kind === 'joined' && e.groupId === groupId));
    // Six epochs, so epoch 0 is beyond the four past epochs kept for application messages.
    for (let i = 0; i < 6; i++) await committer.client.updateGroupKeys(groupId);
    await until(() => converged([committer, victim, friend], groupId));
    await settled();
  });

  test('a commit from a non-member (right group id and epoch, its own keys) is dropped', async () => {
    const epoch = (await victim.client.group(groupId))!.epoch;
    const ctx = await mls.createMlsContext();
    const outsider = generateIdentity();
    let forged = (await mls.createGroup(ctx, outsider, { groupId: Buffer.from(groupId, 'hex') })).state;
    while (mls.epochOf(forged) < epoch) forged = (await mls.commitGroup(ctx, forged)).state;
    const commit = await mls.commitGroup(ctx, forged);
    expect(mls.peekHeader(commit.commit).epoch).toBe(epoch);
    forgedCommit = commit.commit;
    await expectDropped('mls', () => raw.publish(topic, encodeGroupPayload(commit.commit)));
  });

  test('application messages for an epoch the victim does not keep are dropped', async () => {
    await committer.client.sendToGroup(groupId, 'control');
    await until(() => groupTexts(victim, groupId).includes('control'));
    const message = await lastApplication(topic);
    // MLSMessage header: version(2) wire_format(2) group_id(1 + 32) then the u64 epoch in the clear.
    const stale = new Uint8Array(message);
    new DataView(stale.buffer).setBigUint64(37, 0n);
    await expectDropped('mls', () => raw.publish(topic, encodeGroupPayload(stale)));
  });

  test('a forged future epoch makes the member ask once; the committer refuses, the member is not behind', async () => {
    const groupBefore = await committer.client.group(groupId);
    const future = new Uint8Array(await lastApplication(topic));
    new DataView(future.buffer).setBigUint64(37, 1n << 40n);
    const gaps = victim.client.drops.get('group_epoch_gap');
    const refused = committer.client.drops.get('rejoin_not_behind');
    await raw.publish(topic, encodeGroupPayload(future));
    await until(() => victim.client.drops.get('group_epoch_gap') > gaps);
    // An unauthenticated header is all it takes to look behind (§9), so the victim and the friend
    // each ask once; their requests carry their own signed epoch, which is the group's, so the
    // committer refuses both and changes nothing.
    await until(() => committer.client.drops.get('rejoin_not_behind') === refused + 2, 20_000, 'refused');
    expect(await committer.client.group(groupId)).toEqual(groupBefore);
    expect(await converged([committer, victim, friend], groupId)).toBe(true);
    expect(victim.events.some((e) => e.kind === 'rejoined' && e.groupId === groupId)).toBe(false);
    // The requests' outbox rows go once their PUBACK arrives, which can be after the committer has
    // already refused; wait for that so the next step compares against a settled store.
    await until(() => (JSON.parse(victimStore.dump()) as { outbox: unknown[] }).outbox.length === 0);
    // Not again within ten minutes: the next forged header changes nothing at all.
    new DataView(future.buffer).setBigUint64(37, (1n << 40n) + 1n);
    await expectDropped('group_epoch_gap', () => raw.publish(topic, encodeGroupPayload(future)));
    await committer.client.sendToGroup(groupId, 'after the refusal');
    await until(() => groupTexts(victim, groupId).includes('after the refusal'));
    expect(committer.client.drops.get('rejoin_not_behind')).toBe(refused + 2);
    expect(await committer.client.group(groupId)).toEqual(groupBefore);
  });

  test('replayed commits are dropped: a processed one as a duplicate, one from a past epoch as stale', async () => {
    const commits = raw
      .captured(topic)
      .map((p) => decodeGroupPayload(p))
      .filter((m) => mls.peekHeader(m).contentType === 'commit');
    expect(commits.length).toBeGreaterThanOrEqual(6);
    await expectDropped('duplicate', () =>
      raw.publish(topic, encodeGroupPayload(commits[commits.length - 1]!)),
    );
    await expectDropped('duplicate', () => raw.publish(topic, encodeGroupPayload(commits[0]!)));
    // Two more epochs, so the never-processed forged commit is neither current nor the one just left.
    for (let i = 0; i < 2; i++) await committer.client.updateGroupKeys(groupId);
    await until(() => converged([committer, victim, friend], groupId));
    await expectDropped('group_stale', () => raw.publish(topic, encodeGroupPayload(forgedCommit)));
    await committer.client.sendToGroup(groupId, 'still in sync');
    await until(() => groupTexts(victim, groupId).includes('still in sync'));
  });

  test('a GroupPayload with a sender field, or for another group, is dropped', async () => {
    const message = await lastApplication(topic);
    const other = await committer.client.createGroup([victim.client.userId]);
    await until(() => victim.events.some((e) => e.kind === 'joined' && e.groupId === other.groupId));
    await settled();
    await expectDropped('group_payload', () =>
      raw.publish(topicOf(other.topicId), encodeGroupPayload(message)),
    );
    const withSender = cborMap([
      [0, 5],
      [1, new Uint8Array(16)],
      [3, message],
    ]);
    await expectDropped('group_payload', () => raw.publish(topic, withSender));
  });
});

test('a commit that takes the group over the member cap is dropped; one up to the cap is processed', async () => {
  const g = await committer.client.createGroup([victim.client.userId, friend.client.userId]);
  await until(() => victim.events.some((e) => e.kind === 'joined' && e.groupId === g.groupId));
  const [fourth, fifth] = await Promise.all([world.start(), world.start()]);
  // Control: the commit adding the fourth member (the victim's cap) is processed.
  await committer.client.addToGroup(g.groupId, [fourth!.client.userId]);
  await until(async () => (await victim.client.group(g.groupId))?.members.length === 4);
  await settled();
  // The committer (cap 250) adds a fifth; the victim (cap 4) drops that commit and keeps its state.
  await expectDropped('group_too_large', () =>
    committer.client.addToGroup(g.groupId, [fifth!.client.userId]),
  );
  expect((await victim.client.group(g.groupId))!.members).toHaveLength(4);
});
