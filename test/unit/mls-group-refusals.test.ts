/** MLS groups: replays, epochs, limits, forged credentials and excluded proposals (see mls-group.test.ts). */
import { createProposal, encodeMlsMessage, type LeafNodeUpdate } from 'ts-mls';
import { signWithLabel } from 'ts-mls/crypto/signature.js';
import { encodeLeafNodeTBS } from 'ts-mls/leafNode.js';
import { equalBytes, toHex } from '../../framework/relay/bytes.js';
import { ProtocolError, VerificationError } from '../../framework/relay/errors.js';
import { credentialIdentityOf } from '../../framework/relay/mls/auth.js';
import {
  commitGroup,
  createGroup,
  createMlsContext,
  encodeSession,
  encryptApplication,
  epochOf,
  generateKeyPackage,
  GroupLimitError,
  joinFromWelcome,
  peekHeader,
  pendingProposals,
  processGroupMessage,
  proposeAdd,
  proposeRemove,
  proposeUpdate,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { clientStateOf, unwrap } from '../../framework/relay/mls/state.js';
import { buildGroup, dec, deliver, enc, makeIdentity, nowSeconds, type Participant } from './mls-helpers.js';
import { expectInSync, impostorKeyPackage } from './mls-group-checks.js';

let ctx: MlsContext;
beforeAll(async () => {
  ctx = await createMlsContext();
});

describe('groups', () => {
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
    const bad = await impostorKeyPackage(ctx);
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
    await expectInSync(ctx, [...members, { id: frank, state: joined.state }]);
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
    await expectInSync(ctx, members);
  });
});
