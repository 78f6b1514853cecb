/**
 * MLS groups through framework/relay/mls: creation, joins, Add/Remove/Update, leaving, and size.
 * mls-group-committer.test.ts covers the committer rule and hand-over, mls-group-refusals.test.ts
 * what receivers refuse.
 */
import { toHex } from '../../framework/relay/bytes.js';
import { CodecError, ProtocolError } from '../../framework/relay/errors.js';
import {
  commitGroup,
  committerOf,
  createGroup,
  createMlsContext,
  encodeSession,
  encryptApplication,
  epochOf,
  generateKeyPackage,
  groupIdOf,
  hasPendingUpdate,
  isCommitter,
  isNextCommitter,
  joinFromWelcome,
  memberByIdentityKey,
  membersOf,
  ownLeafIndex,
  peekHeader,
  pendingProposals,
  processGroupMessage,
  proposeAdd,
  proposeRemove,
  proposeUpdate,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { buildGroup, dec, deliver, enc, makeIdentity, nowSeconds, type Participant } from './mls-helpers.js';
import { broadcast, expectInSync, leafHpkeKey } from './mls-group-checks.js';

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

describe('groups', () => {
  test('a 5-member group: one commit adds four, each joins, messages reach everyone', async () => {
    const members = await buildGroup(ctx, 5);
    const [alice, bob] = members as [Participant, Participant];
    expect(members.map((m) => ownLeafIndex(m.state))).toEqual([0, 1, 2, 3, 4]);
    expect(isCommitter(alice.state)).toBe(true);
    expect(isNextCommitter(bob.state)).toBe(true);
    for (const m of members) {
      expect(committerOf(m.state).identityKey).toEqual(alice.id.signingPublic);
      expect(groupIdOf(m.state)).toEqual(groupIdOf(alice.state));
    }
    expect(memberByIdentityKey(bob.state, members[3]!.id.signingPublic)?.leafIndex).toBe(3);
    expect(memberByIdentityKey(bob.state, makeIdentity().signingPublic)).toBeUndefined();
    await expectInSync(ctx, members);
    for (const from of members) await broadcast(ctx, members, from, `hello from ${ownLeafIndex(from.state)}`);
  });

  test('ts-mls puts no ratchet tree in the GroupInfo: the Welcome needs the separate tree', async () => {
    const now = nowSeconds();
    const creator = await createGroup(ctx, makeIdentity(), { now, groupId: new Uint8Array(32).fill(3) });
    expect(groupIdOf(creator.state)).toEqual(new Uint8Array(32).fill(3));
    const kp = await generateKeyPackage(ctx, makeIdentity(), now);
    const commit = await commitGroup(ctx, creator.state, { adds: [kp.keyPackage], now });
    const opts = { members: { min: 2, max: 250 } };
    await expect(joinFromWelcome(ctx, commit.welcome!, undefined, [kp], opts)).rejects.toThrow(
      /without a ratchet tree/,
    );
    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [kp], opts);
    expect(joined.signerLeafIndex).toBe(0);
    // createGroup's own first commit (a committed leaf for the creator) makes the Add epoch 1.
    expect(commit.epoch).toBe(1n);
    expect(epochOf(joined.state)).toBe(2n);
    await expect(createGroup(ctx, makeIdentity(), { groupId: new Uint8Array(16) })).rejects.toThrow(
      /32 bytes/,
    );
  });

  test('Add, Remove and Update from three non-committers in one epoch, committed together', async () => {
    const members = await buildGroup(ctx, 5);
    const [alice, bob, carol, dave, erin] = members as [
      Participant,
      Participant,
      Participant,
      Participant,
      Participant,
    ];
    const frank = makeIdentity();
    const frankKp = await generateKeyPackage(ctx, frank, nowSeconds());
    const daveKeyBefore = leafHpkeKey(dave.state, 3);

    const add = await proposeAdd(ctx, bob.state, frankKp.keyPackage);
    bob.state = add.state;
    const addSeen = await deliver(ctx, members, bob, add.message);
    expect(addSeen.get(alice)?.kind).toBe('proposal');
    expect(addSeen.get(alice)?.proposal?.kind).toBe('add');
    expect(addSeen.get(alice)?.proposal?.add?.userId).toEqual(frank.userId);

    const remove = await proposeRemove(ctx, carol.state, 4);
    carol.state = remove.state;
    await deliver(ctx, members, carol, remove.message);

    const update = await proposeUpdate(ctx, dave.state);
    dave.state = update.state;
    expect(hasPendingUpdate(dave.state)).toBe(true);
    await deliver(ctx, members, dave, update.message);

    // Pending proposals do not block application messages (§9).
    await broadcast(ctx, members, erin, 'still here');

    const pending = pendingProposals(alice.state);
    expect(pending.map((p) => [p.kind, p.senderLeaf])).toEqual([
      ['add', 1],
      ['remove', 2],
      ['update', 3],
    ]);
    expect(pending[1]!.removeLeaf).toBe(4);
    expect(pending.every((p) => /^[0-9a-f]{64}$/.test(p.ref))).toBe(true);
    expect(pendingProposals(bob.state).map((p) => p.ref)).toEqual(pending.map((p) => p.ref));

    const commit = await commitGroup(ctx, alice.state);
    alice.state = commit.state;
    expect(commit.added.map((m) => toHex(m.userId))).toEqual([toHex(frank.userId)]);
    expect(commit.removed.map((m) => m.leafIndex)).toEqual([4]);
    expect(peekHeader(commit.commit)).toEqual({
      groupId: groupIdOf(bob.state),
      epoch: commit.epoch,
      contentType: 'commit',
    });

    const results = await deliver(ctx, members, alice, commit.commit);
    for (const m of [bob, carol, dave]) {
      const got = results.get(m)!;
      expect(got.kind).toBe('commit');
      expect(got.sender.leafIndex).toBe(0);
      expect(got.epoch).toBe(commit.epoch);
      expect(got.added.map((x) => toHex(x.userId))).toEqual([toHex(frank.userId)]);
      expect(got.removed.map((x) => toHex(x.userId))).toEqual([toHex(erin.id.userId)]);
    }
    const erinResult = results.get(erin)!;
    expect(erinResult.kind).toBe('removed');
    expect(erinResult.state).toBe(erin.state);
    expect(erinResult.removed.map((x) => x.leafIndex)).toEqual([4]);

    // Dave's pending Update was installed: his leaf carries the proposed key everywhere.
    expect(hasPendingUpdate(dave.state)).toBe(false);
    expect(leafHpkeKey(dave.state, 3)).not.toEqual(daveKeyBefore);
    expect(leafHpkeKey(alice.state, 3)).toEqual(leafHpkeKey(dave.state, 3));

    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [frankKp], {
      members: { min: 2, max: 250 },
    });
    const frankP: Participant = { id: frank, state: joined.state };
    const group = [alice, bob, carol, dave, frankP];
    await expectInSync(ctx, group);
    expect(ownLeafIndex(frankP.state)).toBe(4);

    // The removed member cannot read the next epoch.
    const next = await encryptApplication(ctx, bob.state, enc('erin is gone'));
    bob.state = next.state;
    await expect(processGroupMessage(ctx, erin.state, next.message)).rejects.toThrow(/future epoch/);
    const read = await deliver(ctx, group, bob, next.message);
    expect([...read.values()].map((r) => dec(r.plaintext))).toEqual(Array(4).fill('erin is gone'));
  });

  test('a removed member gets kind "removed", no exception, and reads nothing afterwards', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    const before = encodeSession(carol.state);
    const commit = await commitGroup(ctx, alice.state, { removes: [2, 2, 7] });
    expect(commit.removed.map((m) => m.leafIndex)).toEqual([2]);
    expect(commit.welcome).toBeUndefined();
    alice.state = commit.state;
    const got = await processGroupMessage(ctx, carol.state, commit.commit);
    expect(got.kind).toBe('removed');
    expect(got.removed[0]?.identityKey).toEqual(carol.id.signingPublic);
    expect(encodeSession(carol.state)).toEqual(before);
    bob.state = (await processGroupMessage(ctx, bob.state, commit.commit)).state;
    const out = await encryptApplication(ctx, alice.state, enc('after'));
    await expect(processGroupMessage(ctx, carol.state, out.message)).rejects.toBeInstanceOf(ProtocolError);
    expect(dec((await processGroupMessage(ctx, bob.state, out.message)).plaintext)).toBe('after');
  });

  test('a member leaves by proposing its own Remove', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    const leave = await proposeRemove(ctx, carol.state, ownLeafIndex(carol.state));
    carol.state = leave.state;
    await deliver(ctx, members, carol, leave.message);
    const commit = await commitGroup(ctx, alice.state);
    alice.state = commit.state;
    const results = await deliver(ctx, members, alice, commit.commit);
    expect(results.get(carol)?.kind).toBe('removed');
    expect(results.get(bob)?.removed.map((m) => m.leafIndex)).toEqual([2]);
    await expectInSync(ctx, [alice, bob]);
  });

  test('peekHeader reads the clear header only, and rejects what is not a PrivateMessage', async () => {
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    expect(() => peekHeader(new Uint8Array([0, 1, 2]))).toThrow(CodecError);
    expect(() => peekHeader(kp.keyPackage)).toThrow(ProtocolError);
  });

  test('a group of 50 created in one commit works', async () => {
    const members = await buildGroup(ctx, 50);
    expect(membersOf(members[49]!.state)).toHaveLength(50);
    await expectInSync(ctx, [members[0]!, members[1]!, members[49]!]);
    await broadcast(ctx, members, members[49]!, 'fifty');
    // A commit with a path across the full tree is followed by everyone.
    const commit = await commitGroup(ctx, members[0]!.state, { removes: [25] });
    members[0]!.state = commit.state;
    const results = await deliver(ctx, members, members[0]!, commit.commit);
    expect(results.get(members[25]!)?.kind).toBe('removed');
    const rest = members.filter((_, i) => i !== 25);
    await expectInSync(ctx, rest);
  });
});
