// Outbound 1:1 steps (steps/direct-send.ts) on real MLS sessions and real sealing, without a broker.
import { unconfirmedContent } from '../../framework/relay/outgoing-content.js';
import { asGroupIdHex, type UnixSeconds, type UserIdHex } from '../../framework/relay/brand.js';
import { toHex } from '../../framework/relay/bytes.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { systemRandom } from '../../framework/relay/random.js';
import { decodeContent } from '../../framework/relay/content.js';
import { decodeEnvelope, decodeInnerPayload } from '../../framework/relay/envelope.js';
import { generateIdentity, type Identity } from '../../framework/relay/identity.js';
import {
  createMlsContext,
  ExporterCache,
  createOneToOne,
  generateKeyPackage,
  joinFromWelcome,
  processMessage,
  proposeUpdate,
  type GroupSession,
} from '../../framework/relay/mls/index.js';
import { PowMiner } from '../../framework/relay/pow.js';
import { createOpener } from '../../framework/relay/seal.js';
import {
  directCommitPending,
  directEncrypt,
  directProposeUpdate,
  refreshBeforeSend,
  type DirectSendContext,
} from '../../framework/relay/steps/direct-send.js';
import { directReplies } from '../../framework/relay/steps/direct-replies.js';
import { newDirectSession } from '../../framework/relay/steps/direct-session.js';
import type { PeerRecord, SessionRecord } from '../../framework/relay/store.js';

const NOW = Math.floor(Date.now() / 1000) as UnixSeconds;
let alice: Identity;
let bob: Identity;
let aliceState: GroupSession;
let bobState: GroupSession;
let aliceCtx: DirectSendContext;
let aliceSession: SessionRecord;
let bobAsPeer: PeerRecord;
const miner = new PowMiner({ workers: 0 });

beforeAll(async () => {
  const mlsCtx = await createMlsContext();
  alice = generateIdentity();
  bob = generateIdentity();
  const bobKp = await generateKeyPackage(mlsCtx, bob, NOW);
  const created = await createOneToOne(mlsCtx, alice, bobKp.keyPackage, { now: NOW });
  aliceState = created.state;
  bobState = (await joinFromWelcome(mlsCtx, created.welcome, created.ratchetTree, [bobKp])).state;
  const clock = new ManualClock(NOW);
  aliceCtx = {
    mls: mlsCtx,
    selfId: alice.userId,
    clock,
    random: systemRandom,
    seal: {
      identity: alice,
      mls: mlsCtx,
      clock,
      random: systemRandom,
      prefix: 'relay',
      miner,
      accessKeys: new ExporterCache(),
      onPow: () => undefined,
    },
  };
  const bobHex = toHex(bob.userId) as UserIdHex;
  aliceSession = await newDirectSession(
    aliceCtx,
    aliceState,
    asGroupIdHex('ab'.repeat(32)),
    bobHex,
    true,
    NOW,
  );
  bobAsPeer = { userId: bobHex, identityKey: bob.signingPublic, sealKey: bob.sealPublic, powBits: 8 };
});

afterAll(() => miner.close());

/** What Bob's client does with a row: open the sealed envelope, then MLS. */
async function atBob(payload: Uint8Array, state: GroupSession = bobState) {
  const env = decodeEnvelope(payload);
  expect(env.access).toBeDefined();
  expect(env.powNonce).toBe(0n);
  const opener = await createOpener(bob.sealSecret);
  const inner = decodeInnerPayload(
    await opener.open({
      recipientId: bob.userId,
      enc: env.enc,
      ciphertext: env.ciphertext,
      sentAt: env.sentAt,
      hint: env.access!.hint,
    }),
  );
  expect(toHex(inner.senderId)).toBe(toHex(alice.userId));
  return processMessage(aliceCtx.mls, state, inner.mls);
}

describe('direct send steps', () => {
  it('encrypts a message into an inbox row the peer opens and reads; an unconfirmed session keeps its text', async () => {
    const w = await directEncrypt(aliceCtx, aliceSession, aliceState, bobAsPeer, {
      content: 'hello',
      id: 'x1',
    });
    expect(w.row.topic).toContain(toHex(bob.userId));
    expect(w.session.messagesSinceCommit).toBe(aliceSession.messagesSinceCommit + 1);
    expect(w.session.unconfirmedOutgoing.map(unconfirmedContent)).toEqual([
      { type: 'text', content: 'hello', id: 'x1' },
    ]);
    expect(w.session.version).toBe(aliceSession.version);
    const r = await atBob(w.row.payload);
    expect(r.kind === 'application' && decodeContent(r.plaintext!).content).toBe('hello');
    const confirmed = await directEncrypt(
      aliceCtx,
      { ...aliceSession, initiatedUnconfirmed: false },
      aliceState,
      bobAsPeer,
      { content: 'later' },
    );
    expect(confirmed.session.unconfirmedOutgoing).toEqual([]);
  });

  it('keeps the whole content of an unconfirmed message, type and id, to re-send it after a lost race', async () => {
    const part = { type: 'stream', id: 's1', seq: 3, content: 'more', done: true } as const;
    const w = await directEncrypt(aliceCtx, aliceSession, aliceState, bobAsPeer, part);
    expect(w.session.unconfirmedOutgoing.map(unconfirmedContent)).toEqual([part]);
    const typing = await directEncrypt(aliceCtx, w.session, w.state, bobAsPeer, {
      type: 'typing',
      state: 'start',
      content: '',
    });
    expect(typing.session.unconfirmedOutgoing).toEqual(w.session.unconfirmedOutgoing);
    // A session stored before types were kept holds the plain text: it reads as a text.
    expect(unconfirmedContent('plain {text}')).toEqual({ type: 'text', content: 'plain {text}' });
    expect(unconfirmedContent('{not json')).toEqual({ type: 'text', content: '{not json' });
  });

  it('refreshes keys before sending: the committer commits pending proposals, others propose after N messages', async () => {
    expect(refreshBeforeSend(aliceState, aliceSession, 1000)).toBeUndefined();
    // Alice created the group: she is the committer and never proposes.
    expect(
      refreshBeforeSend(aliceState, { ...aliceSession, messagesSinceCommit: 5000 }, 1000),
    ).toBeUndefined();
    expect(refreshBeforeSend(bobState, { ...aliceSession, messagesSinceCommit: 999 }, 1000)).toBeUndefined();
    expect(refreshBeforeSend(bobState, { ...aliceSession, messagesSinceCommit: 1000 }, 1000)).toBe(
      'propose-update',
    );
    const proposed = await proposeUpdate(aliceCtx.mls, bobState);
    const pending = (await processMessage(aliceCtx.mls, aliceState, proposed.message)).state;
    expect(refreshBeforeSend(pending, aliceSession, 1000)).toBe('commit');
  });

  it("commits the peer's pending proposal: a new epoch with rolled access keys, readable by the peer", async () => {
    const proposed = await proposeUpdate(aliceCtx.mls, bobState);
    const pending = (await processMessage(aliceCtx.mls, aliceState, proposed.message)).state;
    const w = await directCommitPending(
      aliceCtx,
      { ...aliceSession, messagesSinceCommit: 7 },
      pending,
      bobAsPeer,
    );
    expect(w.session.epoch).toBe(aliceSession.epoch + 1n);
    expect(w.session.messagesSinceCommit).toBe(0);
    expect(w.session.inboundAccess.previous).toEqual(aliceSession.inboundAccess.current);
    const r = await atBob(w.row.payload, proposed.state);
    expect(r.kind).toBe('commit');
  });

  it('proposes an Update as a non-committer and resets the counter', async () => {
    const bobCtx: DirectSendContext = {
      ...aliceCtx,
      selfId: bob.userId,
      seal: { ...aliceCtx.seal, identity: bob },
    };
    const aliceAsPeer: PeerRecord = {
      userId: toHex(alice.userId) as UserIdHex,
      identityKey: alice.signingPublic,
      sealKey: alice.sealPublic,
      powBits: 8,
    };
    const w = await directProposeUpdate(
      bobCtx,
      { ...aliceSession, messagesSinceCommit: 1000 },
      bobState,
      aliceAsPeer,
    );
    expect(w.session.messagesSinceCommit).toBe(0);
    expect(w.session.epoch).toBe(aliceSession.epoch);
    expect(w.row.topic).toContain(toHex(alice.userId));
  });

  it("replies as the committer: the peer's pending proposal is committed first, then each reply in the new epoch", async () => {
    const proposed = await proposeUpdate(aliceCtx.mls, bobState);
    const pending = (await processMessage(aliceCtx.mls, aliceState, proposed.message)).state;
    const loaded = { session: aliceSession, state: pending, peer: bobAsPeer };
    const none = await directReplies(aliceCtx, loaded, {
      replies: [],
      answered: { content: 'q', type: 'text' },
      check: () => undefined,
    });
    expect(none.outbox).toEqual([]);
    expect(none.state).toBe(pending);
    const out = await directReplies(aliceCtx, loaded, {
      replies: [{ content: 'r1' }, { content: 'r2' }],
      answered: { content: 'q', id: 'm9', type: 'text' },
      check: () => undefined,
    });
    expect(out.outbox).toHaveLength(3);
    expect(out.session.epoch).toBe(aliceSession.epoch + 1n);
    expect(out.session.messagesSinceCommit).toBe(3);
    let bobNow = proposed.state;
    const kinds: string[] = [];
    for (const row of out.outbox) {
      const r = await atBob(row.payload, bobNow);
      kinds.push(r.kind === 'application' ? decodeContent(r.plaintext!).content : r.kind);
      bobNow = r.state;
    }
    expect(kinds).toEqual(['commit', 'r1', 'r2']);
  });
});
