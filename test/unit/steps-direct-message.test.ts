// The 1:1 message step (steps/direct-message.ts) on real MLS sessions, without a broker or a store.
import { asGroupIdHex, asUserId, type UnixSeconds, type UserIdHex } from '../../framework/relay/brand.js';
import { toHex } from '../../framework/relay/bytes.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { systemRandom } from '../../framework/relay/random.js';
import { encodeContent } from '../../framework/relay/content.js';
import {
  commitPending,
  createMlsContext,
  createOneToOne,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  proposeUpdate,
  processMessage,
  type GroupSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import type { SigningIdentity } from '../../framework/relay/mls/keypackage.js';
import type { StepContext } from '../../framework/relay/steps/context.js';
import { directMessage } from '../../framework/relay/steps/direct-message.js';
import { newDirectSession } from '../../framework/relay/steps/direct-session.js';
import type { SessionRecord } from '../../framework/relay/store.js';
import { enc, makeIdentity, nowSeconds } from './mls-helpers.js';

let mlsCtx: MlsContext;
let aliceId: SigningIdentity;
let bobId: SigningIdentity;
let alice: GroupSession;
let bob: GroupSession;
let bobCtx: StepContext;
let bobSession: SessionRecord;
const NOW = 1_900_000_000 as UnixSeconds;

const hex = (id: SigningIdentity) => toHex(id.userId) as UserIdHex;

beforeAll(async () => {
  mlsCtx = await createMlsContext();
  aliceId = makeIdentity();
  bobId = makeIdentity();
  const now = nowSeconds();
  const bobKp = await generateKeyPackage(mlsCtx, bobId, now);
  const created = await createOneToOne(mlsCtx, aliceId, bobKp.keyPackage, { now });
  alice = created.state;
  const joined = await joinFromWelcome(mlsCtx, created.welcome, created.ratchetTree, [bobKp]);
  bob = joined.state;
  bobCtx = { mls: mlsCtx, selfId: asUserId(bobId.userId), clock: new ManualClock(NOW), random: systemRandom };
  bobSession = await newDirectSession(bobCtx, bob, asGroupIdHex('ab'.repeat(32)), hex(aliceId), false, NOW);
});

async function fromAlice(text: string): Promise<Uint8Array> {
  return (await encryptApplication(mlsCtx, alice, encodeContent({ content: text, id: 'm1' }))).message;
}

describe('directMessage', () => {
  it('reads an application message: the message for the handler, a counted and used session', async () => {
    const step = await directMessage(
      bobCtx,
      { session: bobSession, processed: false },
      {
        inner: { mls: await fromAlice('hi'), senderIdentityKey: aliceId.signingPublic },
        sender: hex(aliceId),
        now: NOW,
      },
    );
    if (step.drop) throw new Error(`dropped: ${step.drop}`);
    expect(step.kind).toBe('application');
    expect(step.received?.content.content).toBe('hi');
    expect(step.received?.conversation).toEqual({
      kind: 'direct',
      id: hex(aliceId),
      groupId: bobSession.groupId,
    });
    expect(step.next.messagesSinceCommit).toBe(bobSession.messagesSinceCommit + 1);
    expect(step.next.unusedSince).toBeUndefined();
    expect(bobSession.unusedSince).toBe(NOW);
    // The step does not advance the loaded record's version: the shell's compare-and-set does.
    expect(step.next.version).toBe(bobSession.version);
  });

  it('uses the cached state when given one instead of decoding the record', async () => {
    const step = await directMessage(
      bobCtx,
      { session: { ...bobSession, state: new Uint8Array([1, 2, 3]) }, processed: false, cached: bob },
      {
        inner: { mls: await fromAlice('cached'), senderIdentityKey: aliceId.signingPublic },
        sender: hex(aliceId),
        now: NOW,
      },
    );
    expect(!step.drop && step.received?.content.content).toBe('cached');
  });

  it('drops a message from someone other than the session peer, before any MLS work', async () => {
    const step = await directMessage(
      bobCtx,
      { session: bobSession, processed: false },
      {
        inner: { mls: new Uint8Array(8), senderIdentityKey: bobId.signingPublic },
        sender: hex(bobId),
        now: NOW,
      },
    );
    expect(step).toEqual({ drop: 'sender_binding' });
  });

  it('drops a message already processed', async () => {
    const step = await directMessage(
      bobCtx,
      { session: bobSession, processed: true },
      {
        inner: { mls: await fromAlice('again'), senderIdentityKey: aliceId.signingPublic },
        sender: hex(aliceId),
        now: NOW,
      },
    );
    expect(step).toEqual({ drop: 'duplicate' });
  });

  it('drops what MLS refuses, and a sender whose MLS credential is not the envelope key', async () => {
    const logged: string[] = [];
    const garbage = await directMessage(
      bobCtx,
      { session: bobSession, processed: false },
      {
        inner: { mls: enc('not mls'), senderIdentityKey: aliceId.signingPublic },
        sender: hex(aliceId),
        now: NOW,
      },
      (e) => logged.push(e),
    );
    expect(garbage).toEqual({ drop: 'mls' });
    expect(logged).toHaveLength(1);
    const forged = await directMessage(
      bobCtx,
      { session: bobSession, processed: false },
      {
        inner: { mls: await fromAlice('x'), senderIdentityKey: makeIdentity().signingPublic },
        sender: hex(aliceId),
        now: NOW,
      },
    );
    expect(forged).toEqual({ drop: 'sender_binding' });
  });

  it('rolls the access keys on a commit', async () => {
    // Bob proposes an Update; Alice (the committer) commits it; Bob processes the commit.
    const proposed = await proposeUpdate(mlsCtx, bob);
    const atAlice = await processMessage(mlsCtx, alice, proposed.message);
    const committed = await commitPending(mlsCtx, atAlice.state);
    const session = { ...bobSession, messagesSinceCommit: 5 };
    const step = await directMessage(
      bobCtx,
      { session, processed: false, cached: proposed.state },
      {
        inner: { mls: committed.commit, senderIdentityKey: aliceId.signingPublic },
        sender: hex(aliceId),
        now: NOW,
      },
    );
    if (step.drop) throw new Error(`dropped: ${step.drop}`);
    expect(step.kind).toBe('commit');
    expect(step.received).toBeUndefined();
    expect(step.next.epoch).toBe(session.epoch + 1n);
    expect(step.next.messagesSinceCommit).toBe(0);
    expect(step.next.inboundAccess.previous).toEqual(session.inboundAccess.current);
    expect(toHex(step.next.inboundAccess.current)).not.toBe(toHex(session.inboundAccess.current));
  });
});
