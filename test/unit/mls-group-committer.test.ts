/** MLS groups: the one-committer rule, hand-over, commit paths and rejoin (see mls-group.test.ts). */
import { createCommit, encodeMlsMessage } from 'ts-mls';
import { encodeRatchetTree, stripBlankNodes } from 'ts-mls/ratchetTree.js';
import { toHex } from '../../framework/relay/bytes.js';
import {
  commitGroup,
  committerOf,
  createMlsContext,
  encodeSession,
  generateKeyPackage,
  isCommitter,
  isNextCommitter,
  joinFromWelcome,
  needsPathRefresh,
  ownLeafIndex,
  pendingProposals,
  processGroupMessage,
  proposeRemove,
  proposeUpdate,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { clientStateOf } from '../../framework/relay/mls/state.js';
import { buildGroup, deliver, makeIdentity, nowSeconds, type Participant } from './mls-helpers.js';
import { broadcast, expectInSync, leafHpkeKey } from './mls-group-checks.js';

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

describe('groups', () => {
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
    await expectInSync(ctx, group);
    for (const m of group) expect(committerOf(m.state).leafIndex).toBe(1);
    expect(isCommitter(bob.state)).toBe(true);
    expect(isNextCommitter(carol.state)).toBe(true);

    // The new committer's key refresh (an empty commit) is accepted; the old rule no longer applies.
    const refresh = await commitGroup(ctx, bob.state);
    bob.state = refresh.state;
    await deliver(ctx, group, bob, refresh.commit);
    await expectInSync(ctx, group);
    await broadcast(ctx, group, carol, 'new committer works');
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
    await expectInSync(ctx, [bob, carol, dave]);
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
    await expectInSync(ctx, group);
    for (const m of group) expect(committerOf(m.state).identityKey).toEqual(frank.signingPublic);
    expect(isCommitter(frankP.state)).toBe(true);
    const refresh = await commitGroup(ctx, frankP.state);
    frankP.state = refresh.state;
    await deliver(ctx, group, frankP, refresh.commit);
    await expectInSync(ctx, group);
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
      await expectInSync(ctx, members);
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
    await expectInSync(ctx, members);
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
    await expectInSync(ctx, [alice, bob, carol]);
  });
});
