// N-way groups (PROTOCOL.md §9) on real ts-mls 1.6.4 with the node crypto provider.
import { createCommit, createProposal, encodeMlsMessage, generateKeyPackageWithKey } from 'ts-mls';
import type { LeafNodeUpdate } from 'ts-mls';
import { signWithLabel } from 'ts-mls/crypto/signature.js';
import { encodeLeafNodeTBS } from 'ts-mls/leafNode.js';
import { encodeRatchetTree, stripBlankNodes } from 'ts-mls/ratchetTree.js';
import { equalBytes, toHex } from '../../framework/relay/bytes.js';
import { CodecError, ProtocolError, VerificationError } from '../../framework/relay/errors.js';
import { credentialIdentityOf } from '../../framework/relay/mls/auth.js';
import { encodeKeyPackageMessage, relayCapabilities } from '../../framework/relay/mls/keypackage.js';
import {
  commitGroup,
  committerOf,
  createGroup,
  createMlsContext,
  encodeSession,
  encryptApplication,
  epochOf,
  exportSecret,
  generateKeyPackage,
  GroupLimitError,
  groupIdOf,
  hasPendingUpdate,
  isCommitter,
  isNextCommitter,
  joinFromWelcome,
  memberByIdentityKey,
  membersOf,
  needsPathRefresh,
  ownLeafIndex,
  peekHeader,
  pendingProposals,
  processGroupMessage,
  proposeAdd,
  proposeRemove,
  proposeUpdate,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { clientStateOf, unwrap } from '../../framework/relay/mls/state.js';
import { buildGroup, dec, deliver, enc, makeIdentity, nowSeconds, type Participant } from './mls-helpers.js';

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

const exporter = (s: GroupSession): Promise<Uint8Array> =>
  exportSecret(ctx, s, 'test', new Uint8Array(0), 32);

function leafHpkeKey(session: GroupSession, leafIndex: number): Uint8Array {
  const node = unwrap(session).group.ratchetTree[leafIndex * 2];
  if (node?.nodeType !== 'leaf') throw new Error('blank leaf');
  return node.leaf.hpkePublicKey;
}

/** Sends one application message from `from` and checks every other member reads it. */
async function broadcast(members: readonly Participant[], from: Participant, text: string): Promise<void> {
  const out = await encryptApplication(ctx, from.state, enc(text));
  from.state = out.state;
  const results = await deliver(ctx, members, from, out.message);
  for (const got of results.values()) {
    expect(got.kind).toBe('application');
    expect(dec(got.plaintext)).toBe(text);
    expect(got.sender.identityKey).toEqual(from.id.signingPublic);
    expect(got.epoch).toBe(out.epoch);
  }
}

async function expectInSync(members: readonly Participant[]): Promise<void> {
  const [first, ...rest] = members;
  const epoch = epochOf(first!.state);
  const secret = await exporter(first!.state);
  const roster = membersOf(first!.state).map((m) => `${m.leafIndex}:${toHex(m.userId)}`);
  for (const m of rest) {
    expect(epochOf(m.state)).toBe(epoch);
    expect(await exporter(m.state)).toEqual(secret);
    expect(membersOf(m.state).map((x) => `${x.leafIndex}:${toHex(x.userId)}`)).toEqual(roster);
  }
}

/** A KeyPackage signed by a fresh key whose credential names someone else (PROTOCOL.md §2). */
async function impostorKeyPackage(): Promise<Uint8Array> {
  const signer = makeIdentity();
  const victim = makeIdentity();
  const now = nowSeconds();
  const { publicPackage } = await generateKeyPackageWithKey(
    { credentialType: 'basic', identity: credentialIdentityOf(victim.userId) },
    relayCapabilities(),
    { notBefore: BigInt(now - 3600), notAfter: BigInt(now + 86400) },
    [],
    { signKey: signer.signingSeed, publicKey: signer.signingPublic },
    ctx.cipherSuite,
  );
  return encodeKeyPackageMessage(publicPackage);
}

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
    await expectInSync(members);
    for (const from of members) await broadcast(members, from, `hello from ${ownLeafIndex(from.state)}`);
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
    await broadcast(members, erin, 'still here');

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
    await expectInSync(group);
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
    await expectInSync([alice, bob]);
  });

  test('commits by a non-committer are refused, by the engine and by every receiver', async () => {
    const members = await buildGroup(ctx, 4);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    await expect(commitGroup(ctx, bob.state)).rejects.toThrow(/only the committer/);
    await expect(commitGroup(ctx, carol.state)).rejects.toThrow(/only the committer/);
    // Built with ts-mls directly: an empty commit and one removing someone else, by leaf 1.
    const rogue = await createCommit({ state: clientStateOf(ctx, bob.state), cipherSuite: ctx.cipherSuite });
    const rogueRemove = await createCommit(
      { state: clientStateOf(ctx, bob.state), cipherSuite: ctx.cipherSuite },
      { extraProposals: [{ proposalType: 'remove', remove: { removed: 3 } }] },
    );
    for (const bytes of [encodeMlsMessage(rogue.commit), encodeMlsMessage(rogueRemove.commit)]) {
      for (const m of [alice, carol]) {
        const before = encodeSession(m.state);
        await expect(processGroupMessage(ctx, m.state, bytes)).rejects.toThrow(/not the committer/);
        expect(encodeSession(m.state)).toEqual(before);
      }
    }
  });

  test('hand-over: the committer proposes its own Remove, the next-lowest leaf commits it', async () => {
    const members = await buildGroup(ctx, 4);
    const [alice, bob, carol, dave] = members as [Participant, Participant, Participant, Participant];
    const leave = await proposeRemove(ctx, alice.state, 0);
    alice.state = leave.state;
    await deliver(ctx, members, alice, leave.message);

    await expect(commitGroup(ctx, alice.state)).rejects.toThrow(/our own leaf/);
    await expect(commitGroup(ctx, carol.state)).rejects.toThrow(/only the committer/);
    // Excluding the committer's Remove takes the hand-over right away again.
    const ref = pendingProposals(bob.state)[0]!.ref;
    await expect(commitGroup(ctx, bob.state, { exclude: [ref] })).rejects.toThrow(/only the committer/);

    const commit = await commitGroup(ctx, bob.state);
    bob.state = commit.state;
    expect(commit.removed.map((m) => m.leafIndex)).toEqual([0]);
    const results = await deliver(ctx, members, bob, commit.commit);
    expect(results.get(alice)?.kind).toBe('removed');
    expect(results.get(carol)?.kind).toBe('commit');
    const group = [bob, carol, dave];
    await expectInSync(group);
    for (const m of group) expect(committerOf(m.state).leafIndex).toBe(1);
    expect(isCommitter(bob.state)).toBe(true);
    expect(isNextCommitter(carol.state)).toBe(true);

    // The new committer's key refresh (an empty commit) is accepted; the old rule no longer applies.
    const refresh = await commitGroup(ctx, bob.state);
    bob.state = refresh.state;
    await deliver(ctx, group, bob, refresh.commit);
    await expectInSync(group);
    await broadcast(group, carol, 'new committer works');
  });

  test('hand-over while the next committer is also proposed for removal: it takes over anyway', async () => {
    const members = await buildGroup(ctx, 4);
    const [alice, bob, carol, dave] = members as [Participant, Participant, Participant, Participant];
    const leave = await proposeRemove(ctx, alice.state, 0);
    alice.state = leave.state;
    await deliver(ctx, members, alice, leave.message);
    const kick = await proposeRemove(ctx, carol.state, 1);
    carol.state = kick.state;
    await deliver(ctx, members, carol, kick.message);
    const commit = await commitGroup(ctx, bob.state);
    bob.state = commit.state;
    expect(commit.removed.map((m) => m.leafIndex)).toEqual([0]);
    await deliver(ctx, members, bob, commit.commit);
    await expectInSync([bob, carol, dave]);
    expect(isCommitter(bob.state)).toBe(true);
  });

  test('after a hand-over an invitee lands in the blank leaf below the committer and takes over', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    const leave = await proposeRemove(ctx, alice.state, 0);
    alice.state = leave.state;
    await deliver(ctx, members, alice, leave.message);
    const handOver = await commitGroup(ctx, bob.state);
    bob.state = handOver.state;
    await deliver(ctx, members, bob, handOver.commit);

    const frank = makeIdentity();
    const kp = await generateKeyPackage(ctx, frank, nowSeconds());
    const commit = await commitGroup(ctx, bob.state, { adds: [kp.keyPackage] });
    bob.state = commit.state;
    // RFC 9420 §12.1.1: the leftmost blank leaf, which is below the committer.
    expect(commit.added[0]!.leafIndex).toBe(0);
    await deliver(ctx, [bob, carol], bob, commit.commit);
    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [kp], {
      members: { min: 2, max: 250 },
    });
    expect(joined.signerLeafIndex).toBe(1);
    const frankP: Participant = { id: frank, state: joined.state };
    const group = [frankP, bob, carol];
    await expectInSync(group);
    for (const m of group) expect(committerOf(m.state).identityKey).toEqual(frank.signingPublic);
    expect(isCommitter(frankP.state)).toBe(true);
    const refresh = await commitGroup(ctx, frankP.state);
    frankP.state = refresh.state;
    await deliver(ctx, group, frankP, refresh.commit);
    await expectInSync(group);
  });

  test('a Welcome signed by a member that is not the committer is refused by the joiner', async () => {
    const members = await buildGroup(ctx, 3);
    const carol = members[2]!;
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    const { decodeKeyPackageMessage } = await import('../../framework/relay/mls/keypackage.js');
    const rogue = await createCommit(
      { state: clientStateOf(ctx, carol.state), cipherSuite: ctx.cipherSuite },
      {
        extraProposals: [
          { proposalType: 'add', add: { keyPackage: decodeKeyPackageMessage(kp.keyPackage) } },
        ],
      },
    );
    const welcome = encodeMlsMessage({
      version: 'mls10',
      wireformat: 'mls_welcome',
      welcome: rogue.welcome!,
    });
    const tree = encodeRatchetTree(stripBlankNodes(rogue.newState.ratchetTree));
    await expect(
      joinFromWelcome(ctx, welcome, tree, [kp], { members: { min: 2, max: 250 } }),
    ).rejects.toThrow(/not the committer/);
  });

  test('every commit carries a path: Add-only commits refresh the committer and stay joinable', async () => {
    const members = await buildGroup(ctx, 3);
    const alice = members[0]!;
    for (let i = 0; i < 4; i++) {
      const keyBefore = leafHpkeKey(alice.state, 0);
      const id = makeIdentity();
      const kp = await generateKeyPackage(ctx, id, nowSeconds());
      const commit = await commitGroup(ctx, alice.state, { adds: [kp.keyPackage] });
      alice.state = commit.state;
      expect(leafHpkeKey(alice.state, 0)).not.toEqual(keyBefore);
      const results = await deliver(ctx, members, alice, commit.commit);
      expect([...results.values()].every((r) => r.kind === 'commit')).toBe(true);
      // Without the path, ts-mls 1.6.4 joiners refuse the unmerged leaves of the second Add on.
      const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [kp], {
        members: { min: 2, max: 250 },
      });
      members.push({ id, state: joined.state });
      await expectInSync(members);
    }
  });

  test('stale path nodes after a newcomer takes over are cleared by one Update (needsPathRefresh)', async () => {
    let members = await buildGroup(ctx, 8);
    const commitBy = async (actor: Participant, adds: Uint8Array[] = [], removes: number[] = []) => {
      const c = await commitGroup(ctx, actor.state, { adds, removes });
      actor.state = c.state;
      const results = await deliver(ctx, members, actor, c.commit);
      members = members.filter((m) => m === actor || results.get(m)!.kind === 'commit');
      return c;
    };
    const invite = async (): Promise<void> => {
      const committer = members.find((m) => isCommitter(m.state))!;
      const id = makeIdentity();
      const kp = await generateKeyPackage(ctx, id, nowSeconds());
      const c = await commitBy(committer, [kp.keyPackage]);
      const joined = await joinFromWelcome(ctx, c.welcome!, c.ratchetTree, [kp], {
        members: { min: 2, max: 250 },
      });
      members.push({ id, state: joined.state });
    };
    // Leaves 4, 6 and 7 remain; leaf 4 takes over and its path leaves a parent above 4..7.
    await commitBy(members[0]!, [], [1, 2, 3, 5]);
    const first = members[0]!;
    const leave = await proposeRemove(ctx, first.state, 0);
    first.state = leave.state;
    await deliver(ctx, members, first, leave.message);
    await commitBy(members.find((m) => isNextCommitter(m.state))!);
    for (let i = 0; i < 4; i++) await invite(); // leaves 0..3; leaf 0 becomes the committer
    expect(members.filter((m) => needsPathRefresh(m.state)).map((m) => ownLeafIndex(m.state))).toEqual([4]);
    // The next Add lands at leaf 5, under the stale node: refused before anything is sent.
    const committer = members.find((m) => isCommitter(m.state))!;
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    await expect(commitGroup(ctx, committer.state, { adds: [kp.keyPackage] })).rejects.toThrow(/unmerged/);

    const four = members.find((m) => ownLeafIndex(m.state) === 4)!;
    const update = await proposeUpdate(ctx, four.state);
    four.state = update.state;
    await deliver(ctx, members, four, update.message);
    await invite();
    expect(members.some((m) => needsPathRefresh(m.state))).toBe(false);
    await expectInSync(members);
  });

  test('a rejoin: Remove of the old leaf and Add of the same identity in one commit', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    const fresh = await generateKeyPackage(ctx, carol.id, nowSeconds());
    const commit = await commitGroup(ctx, alice.state, { removes: [2], adds: [fresh.keyPackage] });
    alice.state = commit.state;
    expect(commit.removed.map((m) => toHex(m.userId))).toEqual([toHex(carol.id.userId)]);
    expect(commit.added.map((m) => toHex(m.userId))).toEqual([toHex(carol.id.userId)]);
    const results = await deliver(ctx, members, alice, commit.commit);
    expect(results.get(carol)?.kind).toBe('removed');
    expect(results.get(carol)?.added).toEqual([]);
    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [fresh], {
      members: { min: 2, max: 250 },
    });
    carol.state = joined.state;
    await expectInSync([alice, bob, carol]);
  });

  test('replayed commits, past-epoch proposals and future-epoch messages are refused', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob] = members as [Participant, Participant];
    const staleBob = bob.state;
    const proposal = await proposeUpdate(ctx, bob.state);
    const commit = await commitGroup(ctx, alice.state);
    alice.state = commit.state;
    bob.state = (await processGroupMessage(ctx, bob.state, commit.commit)).state;

    await expect(processGroupMessage(ctx, bob.state, commit.commit)).rejects.toThrow(/past epoch/);
    await expect(processGroupMessage(ctx, alice.state, proposal.message)).rejects.toThrow(/past epoch/);

    const out = await encryptApplication(ctx, alice.state, enc('epoch 2'));
    expect(peekHeader(out.message).epoch).toBe(epochOf(staleBob) + 1n);
    expect(peekHeader(out.message).contentType).toBe('application');
    await expect(processGroupMessage(ctx, staleBob, out.message)).rejects.toThrow(/future epoch/);
    expect(dec((await processGroupMessage(ctx, bob.state, out.message)).plaintext)).toBe('epoch 2');
  });

  test('application messages from 4 past epochs still decrypt, from 5 they do not', async () => {
    const members = await buildGroup(ctx, 2);
    const [alice, bob] = members as [Participant, Participant];
    const late: Array<{ epoch: bigint; message: Uint8Array }> = [];
    for (let i = 0; i < 6; i++) {
      const out = await encryptApplication(ctx, bob.state, enc(`from epoch ${epochOf(bob.state)}`));
      bob.state = out.state;
      late.push({ epoch: out.epoch, message: out.message });
      const commit = await commitGroup(ctx, alice.state);
      alice.state = commit.state;
      bob.state = (await processGroupMessage(ctx, bob.state, commit.commit)).state;
    }
    const current = epochOf(alice.state);
    for (const { epoch, message } of late) {
      const age = current - epoch;
      if (age <= 4n) {
        const got = await processGroupMessage(ctx, alice.state, message);
        expect(dec(got.plaintext)).toBe(`from epoch ${epoch}`);
        expect(got.epoch).toBe(epoch);
      } else {
        await expect(processGroupMessage(ctx, alice.state, message)).rejects.toThrow(/no longer kept/);
      }
    }
    expect(late.map((l) => current - l.epoch)).toEqual([6n, 5n, 4n, 3n, 2n, 1n]);
  });

  test('joinFromWelcome enforces the member cap and maxTreeNodes (GroupLimitError)', async () => {
    const now = nowSeconds();
    const created = await createGroup(ctx, makeIdentity(), { now });
    const kps = await Promise.all(
      Array.from({ length: 4 }, () => generateKeyPackage(ctx, makeIdentity(), now)),
    );
    const commit = await commitGroup(ctx, created.state, { adds: kps.map((k) => k.keyPackage), now });
    const join = (opts: Parameters<typeof joinFromWelcome>[4]) =>
      joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [kps[0]!], opts);
    await expect(join({ members: { min: 2, max: 4 } })).rejects.toBeInstanceOf(GroupLimitError);
    await expect(join({ members: { min: 2, max: 4 } })).rejects.toThrow(/5 members/);
    // Five leaves without holes are 9 nodes.
    await expect(join({ members: { min: 2, max: 250 }, maxTreeNodes: 8 })).rejects.toBeInstanceOf(
      GroupLimitError,
    );
    const joined = await join({ members: { min: 2, max: 5 }, maxTreeNodes: 9 });
    expect(joined.members).toHaveLength(5);
    // The 1:1 default still wants exactly two members.
    await expect(join(undefined)).rejects.toBeInstanceOf(ProtocolError);
  });

  test('an Add whose credential does not derive from its key is refused everywhere', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    const bad = await impostorKeyPackage();
    await expect(proposeAdd(ctx, bob.state, bad)).rejects.toBeInstanceOf(VerificationError);
    await expect(commitGroup(ctx, alice.state, { adds: [bad] })).rejects.toBeInstanceOf(VerificationError);
    // Sent anyway by a modified client: receivers refuse the proposal.
    const { decodeKeyPackageMessage } = await import('../../framework/relay/mls/keypackage.js');
    const rogue = await createProposal(
      clientStateOf(ctx, bob.state),
      false,
      { proposalType: 'add', add: { keyPackage: decodeKeyPackageMessage(bad) } },
      ctx.cipherSuite,
    );
    for (const m of [alice, carol]) {
      await expect(processGroupMessage(ctx, m.state, encodeMlsMessage(rogue.message))).rejects.toBeInstanceOf(
        VerificationError,
      );
    }
  });

  test('an Update that swaps the member identity key is refused', async () => {
    const members = await buildGroup(ctx, 2);
    const [alice, bob] = members as [Participant, Participant];
    const other = makeIdentity();
    const group = unwrap(bob.state).group;
    const own = group.ratchetTree[2];
    if (own?.nodeType !== 'leaf') throw new Error('blank');
    const pair = await ctx.cipherSuite.hpke.generateKeyPair();
    const fields = {
      hpkePublicKey: await ctx.cipherSuite.hpke.exportPublicKey(pair.publicKey),
      signaturePublicKey: other.signingPublic,
      credential: { credentialType: 'basic' as const, identity: credentialIdentityOf(other.userId) },
      capabilities: own.leaf.capabilities,
      leafNodeSource: 'update' as const,
      extensions: own.leaf.extensions,
    };
    const tbs = encodeLeafNodeTBS({ ...fields, groupId: group.groupContext.groupId, leafIndex: 1 });
    const leafNode: LeafNodeUpdate = {
      ...fields,
      signature: await signWithLabel(other.signingSeed, 'LeafNodeTBS', tbs, ctx.cipherSuite.signature),
    };
    const rogue = await createProposal(
      clientStateOf(ctx, bob.state),
      false,
      { proposalType: 'update', update: { leafNode } },
      ctx.cipherSuite,
    );
    await expect(processGroupMessage(ctx, alice.state, encodeMlsMessage(rogue.message))).rejects.toThrow(
      /identity key/,
    );
  });

  test('proposeAdd refuses members; commitGroup drops members, repeats and blank leaves', async () => {
    const members = await buildGroup(ctx, 4);
    const [alice, bob, carol] = members as [Participant, Participant, Participant];
    const now = nowSeconds();
    const bobAgain = await generateKeyPackage(ctx, bob.id, now);
    await expect(proposeAdd(ctx, carol.state, bobAgain.keyPackage)).rejects.toThrow(/already a member/);
    await expect(proposeRemove(ctx, carol.state, 9)).rejects.toThrow(/blank/);

    const frank = makeIdentity();
    const frankKps = await Promise.all([0, 1, 2].map(() => generateKeyPackage(ctx, frank, now)));
    const p1 = await proposeAdd(ctx, bob.state, frankKps[0]!.keyPackage);
    bob.state = p1.state;
    await deliver(ctx, members, bob, p1.message);
    const p2 = await proposeAdd(ctx, carol.state, frankKps[1]!.keyPackage);
    carol.state = p2.state;
    await deliver(ctx, members, carol, p2.message);

    const commit = await commitGroup(ctx, alice.state, {
      adds: [frankKps[2]!.keyPackage, bobAgain.keyPackage],
      removes: [9],
    });
    alice.state = commit.state;
    expect(commit.added.map((m) => toHex(m.userId))).toEqual([toHex(frank.userId)]);
    expect(commit.removed).toEqual([]);
    await deliver(ctx, members, alice, commit.commit);
    // The first Add (Bob's proposal, frankKps[0]) is the one committed.
    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, frankKps, {
      members: { min: 2, max: 250 },
    });
    expect(equalBytes(joined.consumedRef, frankKps[0]!.ref)).toBe(true);
    await expectInSync([...members, { id: frank, state: joined.state }]);
  });

  test('excluded proposals are left out and the input session is never changed', async () => {
    const members = await buildGroup(ctx, 3);
    const [alice, bob] = members as [Participant, Participant];
    const invitee = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    const p = await proposeAdd(ctx, bob.state, invitee.keyPackage);
    bob.state = p.state;
    expect(peekHeader(p.message).contentType).toBe('proposal');
    const before = encodeSession(alice.state);
    const got = await processGroupMessage(ctx, alice.state, p.message);
    expect(encodeSession(alice.state)).toEqual(before);
    alice.state = got.state;
    const ref = got.proposal!.ref;
    const beforeCommit = encodeSession(alice.state);
    const commit = await commitGroup(ctx, alice.state, { exclude: [ref] });
    expect(encodeSession(alice.state)).toEqual(beforeCommit);
    expect(commit.added).toEqual([]);
    expect(commit.welcome).toBeUndefined();
    alice.state = commit.state;
    expect(pendingProposals(alice.state)).toEqual([]);
    await deliver(ctx, members, alice, commit.commit);
    await expectInSync(members);
  });

  test('peekHeader reads the clear header only, and rejects what is not a PrivateMessage', async () => {
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    expect(() => peekHeader(new Uint8Array([0, 1, 2]))).toThrow(CodecError);
    expect(() => peekHeader(kp.keyPackage)).toThrow(ProtocolError);
  });

  test('a group of 50 created in one commit works', async () => {
    const members = await buildGroup(ctx, 50);
    expect(membersOf(members[49]!.state)).toHaveLength(50);
    await expectInSync([members[0]!, members[1]!, members[49]!]);
    await broadcast(members, members[49]!, 'fifty');
    // A commit with a path across the full tree is followed by everyone.
    const commit = await commitGroup(ctx, members[0]!.state, { removes: [25] });
    members[0]!.state = commit.state;
    const results = await deliver(ctx, members, members[0]!, commit.commit);
    expect(results.get(members[25]!)?.kind).toBe('removed');
    const rest = members.filter((_, i) => i !== 25);
    await expectInSync(rest);
  });
});
