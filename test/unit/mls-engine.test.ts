import { equalBytes, toHex } from '../../framework/relay/bytes.js';
import { ProtocolError, VerificationError, CodecError } from '../../framework/relay/errors.js';
import {
  commitPending,
  createMlsContext,
  createOneToOne,
  decodeSession,
  encodeSession,
  encryptApplication,
  epochOf,
  exportSecret,
  generateKeyPackage,
  groupIdOf,
  groupIdOfMessage,
  hasPendingProposals,
  hasPendingUpdate,
  isCommitter,
  joinFromWelcome,
  membersOf,
  ownLeafIndex,
  peekSender,
  processMessage,
  proposeUpdate,
  wipeConsumed,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { createCommit, createProposal, encodeMlsMessage } from 'ts-mls';
import { clientStateOf, unwrap } from '../../framework/relay/mls/state.js';
import { dec, enc, makeIdentity, nowSeconds } from './mls-helpers.js';

const ACCESS_LABEL = 'relay-access-v1';

interface Pair {
  alice: GroupSession;
  bob: GroupSession;
  aliceId: ReturnType<typeof makeIdentity>;
  bobId: ReturnType<typeof makeIdentity>;
}

async function openSession(aliceCtx: MlsContext, bobCtx: MlsContext): Promise<Pair> {
  const aliceId = makeIdentity();
  const bobId = makeIdentity();
  const now = nowSeconds();
  const bobKp = await generateKeyPackage(bobCtx, bobId, now);
  const created = await createOneToOne(aliceCtx, aliceId, bobKp.keyPackage, { now });
  const joined = await joinFromWelcome(bobCtx, created.welcome, created.ratchetTree, [bobKp]);
  expect(joined.consumedRef).toEqual(bobKp.ref);
  expect(joined.groupInfoSignerKey).toEqual(aliceId.signingPublic);
  expect(created.peer.identityKey).toEqual(bobId.signingPublic);
  return { alice: created.state, bob: joined.state, aliceId, bobId };
}

async function send(
  fromCtx: MlsContext,
  toCtx: MlsContext,
  from: GroupSession,
  to: GroupSession,
  text: string,
): Promise<[GroupSession, GroupSession]> {
  const out = await encryptApplication(fromCtx, from, enc(text));
  const got = await processMessage(toCtx, to, out.message);
  expect(got.kind).toBe('application');
  expect(dec(got.plaintext)).toBe(text);
  expect(got.epoch).toBe(out.epoch);
  wipeConsumed(out.consumed);
  wipeConsumed(got.consumed);
  return [out.state, got.state];
}

const providers: Array<[string, 'node' | 'default', 'node' | 'default']> = [
  ['node/node', 'node', 'node'],
  ['default/default', 'default', 'default'],
  ['node/default (interop)', 'node', 'default'],
  ['default/node (interop)', 'default', 'node'],
];

describe.each(providers)('full 1:1 flow, providers %s', (_name, aliceProvider, bobProvider) => {
  test('key package, create, join, 50 messages each way, update + commit, exporter', async () => {
    const actx = await createMlsContext({ provider: aliceProvider });
    const bctx = await createMlsContext({ provider: bobProvider });
    const opened = await openSession(actx, bctx);
    const bobId = opened.bobId;
    let { alice, bob } = opened;

    expect(epochOf(alice)).toBe(1n);
    expect(epochOf(bob)).toBe(1n);
    expect(groupIdOf(alice)).toEqual(groupIdOf(bob));
    expect(groupIdOf(alice)).toHaveLength(32);
    expect(isCommitter(alice)).toBe(true);
    expect(isCommitter(bob)).toBe(false);
    expect(ownLeafIndex(alice)).toBe(0);
    expect(ownLeafIndex(bob)).toBe(1);
    expect(membersOf(alice).map((m) => toHex(m.userId))).toEqual(membersOf(bob).map((m) => toHex(m.userId)));

    for (let i = 0; i < 50; i++) {
      [alice, bob] = await send(actx, bctx, alice, bob, `a->b ${i}`);
      [bob, alice] = await send(bctx, actx, bob, alice, `b->a ${i}`);
    }

    // The non-committer asks for a key update; a message sent meanwhile still flows both ways.
    const oldBobLeafKey = leafHpkeKey(bob, 1);
    const update = await proposeUpdate(bctx, bob);
    bob = update.state;
    expect(hasPendingUpdate(bob)).toBe(true);
    [bob, alice] = await send(bctx, actx, bob, alice, 'while update pending');
    const proposal = await processMessage(actx, alice, update.message);
    expect(proposal.kind).toBe('proposal');
    expect(proposal.sender.leafIndex).toBe(1);
    alice = proposal.state;
    expect(hasPendingProposals(alice)).toBe(true);
    [alice, bob] = await send(actx, bctx, alice, bob, 'pending proposals do not block sending');

    const epochBefore = epochOf(alice);
    const kBeforeAlice = await exportSecret(actx, alice, ACCESS_LABEL, bobId.userId, 32);
    const commit = await commitPending(actx, alice);
    expect(commit.epoch).toBe(epochBefore);
    alice = commit.state;
    const processed = await processMessage(bctx, bob, commit.commit);
    expect(processed.kind).toBe('commit');
    expect(processed.sender.leafIndex).toBe(0);
    bob = processed.state;
    wipeConsumed(commit.consumed);
    wipeConsumed(processed.consumed);

    expect(epochOf(alice)).toBe(epochBefore + 1n);
    expect(epochOf(bob)).toBe(epochBefore + 1n);
    expect(hasPendingProposals(alice)).toBe(false);
    expect(hasPendingUpdate(bob)).toBe(false);
    // Bob's leaf now carries the key from his Update proposal.
    expect(leafHpkeKey(bob, 1)).not.toEqual(oldBobLeafKey);
    expect(leafHpkeKey(alice, 1)).toEqual(leafHpkeKey(bob, 1));

    // MLS-Exporter agrees on both sides, for the current and the previous epoch.
    const kAlice = await exportSecret(actx, alice, ACCESS_LABEL, bobId.userId, 32);
    const kBob = await exportSecret(bctx, bob, ACCESS_LABEL, bobId.userId, 32);
    expect(kAlice).toEqual(kBob);
    expect(kAlice).not.toEqual(kBeforeAlice);
    const prevBob = await exportSecret(bctx, bob, ACCESS_LABEL, bobId.userId, 32, epochBefore);
    expect(prevBob).toEqual(kBeforeAlice);
    await expect(
      exportSecret(bctx, bob, ACCESS_LABEL, bobId.userId, 32, epochBefore - 1n),
    ).rejects.toBeInstanceOf(ProtocolError);

    for (let i = 0; i < 3; i++) {
      [alice, bob] = await send(actx, bctx, alice, bob, `after commit a->b ${i}`);
      [bob, alice] = await send(bctx, actx, bob, alice, `after commit b->a ${i}`);
    }
  });
});

function leafHpkeKey(session: GroupSession, leafIndex: number): Uint8Array {
  const node = unwrap(session).group.ratchetTree[leafIndex * 2];
  if (node?.nodeType !== 'leaf') throw new Error('blank leaf');
  return node.leaf.hpkePublicKey;
}

describe('engine rules and negative cases', () => {
  let ctx: MlsContext;
  beforeAll(async () => {
    ctx = await createMlsContext();
  });

  test('a decoded session really continues: encrypt after decode, peer decrypts; and back', async () => {
    let { alice, bob } = await openSession(ctx, ctx);
    [alice, bob] = await send(ctx, ctx, alice, bob, 'before storing');
    const storedBob = encodeSession(bob);
    expect(storedBob[0]).toBe(1);
    bob = decodeSession(storedBob);
    expect(encodeSession(bob)).toEqual(storedBob);
    [bob, alice] = await send(ctx, ctx, bob, alice, 'after decode');
    alice = decodeSession(encodeSession(alice));
    [alice, bob] = await send(ctx, ctx, alice, bob, 'alice after decode');

    // Pending update and previous exporter survive storage too.
    const update = await proposeUpdate(ctx, bob);
    bob = decodeSession(encodeSession(update.state));
    alice = (await processMessage(ctx, alice, update.message)).state;
    const commit = await commitPending(ctx, alice);
    alice = decodeSession(encodeSession(commit.state));
    bob = decodeSession(encodeSession((await processMessage(ctx, bob, commit.commit)).state));
    const k1 = await exportSecret(ctx, alice, ACCESS_LABEL, new Uint8Array(16), 32, commit.epoch);
    const k2 = await exportSecret(ctx, bob, ACCESS_LABEL, new Uint8Array(16), 32, commit.epoch);
    expect(k1).toEqual(k2);
    [bob, alice] = await send(ctx, ctx, bob, alice, 'after stored update');
  });

  test('decodeSession rejects unknown versions, truncation and trailing bytes', async () => {
    const { alice } = await openSession(ctx, ctx);
    const bytes = encodeSession(alice);
    const wrongVersion = bytes.slice();
    wrongVersion[0] = 2;
    expect(() => decodeSession(wrongVersion)).toThrow(CodecError);
    expect(() => decodeSession(bytes.subarray(0, bytes.length - 1))).toThrow(CodecError);
    const trailing = new Uint8Array(bytes.length + 1);
    trailing.set(bytes);
    expect(() => decodeSession(trailing)).toThrow(CodecError);
  });

  test('peekSender reports the MLS sender and does not change state', async () => {
    const { alice, bob, aliceId } = await openSession(ctx, ctx);
    const out = await encryptApplication(ctx, alice, enc('peek me'));
    const before = encodeSession(bob);
    const peeked = await peekSender(ctx, bob, out.message);
    expect(encodeSession(bob)).toEqual(before);
    expect(peeked.leafIndex).toBe(0);
    expect(peeked.identityKey).toEqual(aliceId.signingPublic);
    expect(peeked.userId).toEqual(aliceId.userId);
    expect(peeked.contentType).toBe('application');
    expect(peeked.epoch).toBe(epochOf(bob));
    expect(peeked.groupId).toEqual(groupIdOf(bob));
    expect(groupIdOfMessage(out.message)).toEqual(groupIdOf(bob));
    // Peeking twice gives the same answer, and the message still processes afterwards.
    expect((await peekSender(ctx, bob, out.message)).leafIndex).toBe(0);
    expect(dec((await processMessage(ctx, bob, out.message)).plaintext)).toBe('peek me');
  });

  test('processMessage does not change the input session', async () => {
    const { alice, bob } = await openSession(ctx, ctx);
    const out = await encryptApplication(ctx, alice, enc('x'));
    const before = encodeSession(bob);
    const got = await processMessage(ctx, bob, out.message);
    expect(encodeSession(bob)).toEqual(before);
    expect(encodeSession(got.state)).not.toEqual(before);
    // Processing the same message again from the old state works (the caller decides what to keep).
    expect(dec((await processMessage(ctx, bob, out.message)).plaintext)).toBe('x');
  });

  test('a message from a third party group fails', async () => {
    const one = await openSession(ctx, ctx);
    const other = await openSession(ctx, ctx);
    const foreign = await encryptApplication(ctx, other.alice, enc('not for you'));
    await expect(processMessage(ctx, one.bob, foreign.message)).rejects.toBeInstanceOf(ProtocolError);
    await expect(peekSender(ctx, one.bob, foreign.message)).rejects.toBeInstanceOf(ProtocolError);
  });

  test('a message claiming our group id but made with other keys fails verification', async () => {
    const gid = new Uint8Array(32).fill(7);
    const aliceId = makeIdentity();
    const now = nowSeconds();
    const bobId = makeIdentity();
    const bobKp = await generateKeyPackage(ctx, bobId, now);
    const real = await createOneToOne(ctx, aliceId, bobKp.keyPackage, { now, groupId: gid });
    const bob = (await joinFromWelcome(ctx, real.welcome, real.ratchetTree, [bobKp])).state;
    // A third party builds its own group with the same id and the same epoch.
    const malloryKp = await generateKeyPackage(ctx, makeIdentity(), now);
    const fake = await createOneToOne(ctx, makeIdentity(), malloryKp.keyPackage, { now, groupId: gid });
    const forged = await encryptApplication(ctx, fake.state, enc('forged'));
    await expect(peekSender(ctx, bob, forged.message)).rejects.toBeInstanceOf(VerificationError);
    await expect(processMessage(ctx, bob, forged.message)).rejects.toBeInstanceOf(VerificationError);
  });

  test('tampered ciphertext fails verification', async () => {
    const { alice, bob } = await openSession(ctx, ctx);
    const out = await encryptApplication(ctx, alice, enc('integrity'));
    const tampered = out.message.slice();
    tampered[tampered.length - 1]! ^= 1;
    await expect(processMessage(ctx, bob, tampered)).rejects.toBeInstanceOf(VerificationError);
  });

  test('garbage and non-PrivateMessage input is rejected without crashing', async () => {
    const { bob } = await openSession(ctx, ctx);
    await expect(processMessage(ctx, bob, new Uint8Array([0, 1, 2]))).rejects.toBeInstanceOf(CodecError);
    const kp = await generateKeyPackage(ctx, makeIdentity(), nowSeconds());
    await expect(processMessage(ctx, bob, kp.keyPackage)).rejects.toBeInstanceOf(ProtocolError);
  });

  test('own messages and replays are refused (the caller dedupes by digest before)', async () => {
    const { alice, bob } = await openSession(ctx, ctx);
    const out = await encryptApplication(ctx, alice, enc('once'));
    await expect(processMessage(ctx, out.state, out.message)).rejects.toBeInstanceOf(ProtocolError);
    const first = await processMessage(ctx, bob, out.message);
    await expect(processMessage(ctx, first.state, out.message)).rejects.toThrow();
  });

  test('a message from a future epoch is a ProtocolError (the receiver fell behind)', async () => {
    let { alice, bob } = await openSession(ctx, ctx);
    const staleBob = bob;
    const commit = await commitPending(ctx, alice);
    alice = commit.state;
    bob = (await processMessage(ctx, bob, commit.commit)).state;
    const out = await encryptApplication(ctx, alice, enc('epoch 2'));
    await expect(processMessage(ctx, staleBob, out.message)).rejects.toThrow(/future epoch/);
    expect(dec((await processMessage(ctx, bob, out.message)).plaintext)).toBe('epoch 2');
  });

  test('application messages from the previous epoch still decrypt after a commit', async () => {
    let { alice, bob } = await openSession(ctx, ctx);
    const late = await encryptApplication(ctx, bob, enc('sent before the commit'));
    bob = late.state;
    const commit = await commitPending(ctx, alice);
    alice = commit.state;
    const got = await processMessage(ctx, alice, late.message);
    expect(dec(got.plaintext)).toBe('sent before the commit');
    expect(got.epoch).toBe(commit.epoch);
  });

  test('only the committer commits, and the committer does not propose', async () => {
    const { alice, bob } = await openSession(ctx, ctx);
    await expect(commitPending(ctx, bob)).rejects.toBeInstanceOf(ProtocolError);
    await expect(proposeUpdate(ctx, alice)).rejects.toBeInstanceOf(ProtocolError);
    const first = await proposeUpdate(ctx, bob);
    await expect(proposeUpdate(ctx, first.state)).rejects.toBeInstanceOf(ProtocolError);
  });

  test('a commit by the non-committer and a disallowed proposal type are refused', async () => {
    const { alice, bob } = await openSession(ctx, ctx);
    // Built with ts-mls directly: our own API never lets the non-committer commit or remove.
    const bobState = clientStateOf(ctx, bob);
    const rogueCommit = await createCommit({ state: bobState, cipherSuite: ctx.cipherSuite });
    await expect(processMessage(ctx, alice, encodeMlsMessage(rogueCommit.commit))).rejects.toThrow(
      /not the committer/,
    );
    const remove = await createProposal(
      bobState,
      false,
      { proposalType: 'remove', remove: { removed: 0 } },
      ctx.cipherSuite,
    );
    const before = encodeSession(alice);
    await expect(processMessage(ctx, alice, encodeMlsMessage(remove.message))).rejects.toThrow(
      /proposal type/,
    );
    expect(encodeSession(alice)).toEqual(before);
    // A group policy that allows Remove accepts the same bytes.
    const accepted = await processMessage(ctx, alice, encodeMlsMessage(remove.message), {
      allowedProposals: ['add', 'remove', 'update'],
    });
    expect(accepted.kind).toBe('proposal');
  });

  test('a commit that does not carry our pending update leaves the old key in use', async () => {
    let { alice, bob } = await openSession(ctx, ctx);
    const keyBefore = leafHpkeKey(bob, 1);
    const update = await proposeUpdate(ctx, bob);
    bob = update.state;
    // Alice never sees the proposal and commits an empty self-update instead.
    const commit = await commitPending(ctx, alice);
    alice = commit.state;
    bob = (await processMessage(ctx, bob, commit.commit)).state;
    expect(hasPendingUpdate(bob)).toBe(false);
    expect(leafHpkeKey(bob, 1)).toEqual(keyBefore);
    [alice, bob] = await send(ctx, ctx, alice, bob, 'still in sync');
    [bob, alice] = await send(ctx, ctx, bob, alice, 'both ways');
    // And a later update works normally.
    const again = await proposeUpdate(ctx, bob);
    bob = again.state;
    alice = (await processMessage(ctx, alice, again.message)).state;
    const commit2 = await commitPending(ctx, alice);
    bob = (await processMessage(ctx, bob, commit2.commit)).state;
    expect(leafHpkeKey(bob, 1)).not.toEqual(keyBefore);
    [bob] = await send(ctx, ctx, bob, commit2.state, 'after second update');
  });

  test('joinFromWelcome accepts a lookup callback; without any ratchet tree it refuses', async () => {
    const aliceId = makeIdentity();
    const bobId = makeIdentity();
    const now = nowSeconds();
    const kps = [await generateKeyPackage(ctx, bobId, now), await generateKeyPackage(ctx, bobId, now)];
    const used = kps[1]!;
    // No options: the system clock and a random group id.
    const created = await createOneToOne(ctx, aliceId, used.keyPackage);
    const joined = await joinFromWelcome(ctx, created.welcome, created.ratchetTree, async (ref) =>
      kps.find((k) => equalBytes(k.ref, ref)),
    );
    expect(joined.consumedRef).toEqual(used.ref);
    expect(joined.members).toHaveLength(2);
    // Without any ratchet tree the Welcome cannot be joined.
    await expect(joinFromWelcome(ctx, created.welcome, undefined, kps)).rejects.toBeInstanceOf(ProtocolError);
  });

  test('a Welcome for none of our KeyPackages is refused', async () => {
    const now = nowSeconds();
    const bobId = makeIdentity();
    const bobKp = await generateKeyPackage(ctx, bobId, now);
    const otherKp = await generateKeyPackage(ctx, bobId, now);
    const created = await createOneToOne(ctx, makeIdentity(), bobKp.keyPackage, { now });
    await expect(
      joinFromWelcome(ctx, created.welcome, created.ratchetTree, [otherKp]),
    ).rejects.toBeInstanceOf(ProtocolError);
  });

  test('a Welcome whose member count is outside the bounds is refused', async () => {
    const now = nowSeconds();
    const bobKp = await generateKeyPackage(ctx, makeIdentity(), now);
    const created = await createOneToOne(ctx, makeIdentity(), bobKp.keyPackage, { now });
    await expect(
      joinFromWelcome(ctx, created.welcome, created.ratchetTree, [bobKp], {
        members: { min: 3, max: 250 },
      }),
    ).rejects.toThrow(/2 members/);
  });

  test('createOneToOne rejects bad group ids and our own KeyPackage', async () => {
    const me = makeIdentity();
    const now = nowSeconds();
    const peerKp = await generateKeyPackage(ctx, makeIdentity(), now);
    await expect(
      createOneToOne(ctx, me, peerKp.keyPackage, { now, groupId: new Uint8Array(16) }),
    ).rejects.toThrow(/32 bytes/);
    const ownKp = await generateKeyPackage(ctx, me, now);
    await expect(createOneToOne(ctx, me, ownKp.keyPackage, { now })).rejects.toBeInstanceOf(ProtocolError);
  });
});
