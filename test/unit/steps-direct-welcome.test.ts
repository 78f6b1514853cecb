// Pure checks of a joined 1:1 Welcome (steps/direct-welcome.ts), on real MLS Welcomes, no broker.
import { toHex } from '../../framework/relay/bytes.js';
import {
  createMlsContext,
  createOneToOne,
  generateKeyPackage,
  joinFromWelcome,
  type JoinedSession,
  type MlsContext,
} from '../../framework/relay/mls/index.js';
import { asGroupIdHex, asUserId, type UnixSeconds, type UserIdHex } from '../../framework/relay/brand.js';
import { ManualClock } from '../../framework/relay/clock.js';
import { systemRandom } from '../../framework/relay/random.js';
import { DEFAULT_POW_BITS } from '../../framework/relay/labels.js';
import type { OpenedEnvelope } from '../../framework/relay/inbound-envelope.js';
import { groupIdOf } from '../../framework/relay/mls/index.js';
import { newDirectSession } from '../../framework/relay/steps/direct-session.js';
import {
  directWelcome,
  directWelcomeMembers,
  welcomeSuperseded,
  type DirectWelcomeInput,
} from '../../framework/relay/steps/direct-welcome.js';
import { makeIdentity, nowSeconds } from './mls-helpers.js';

let ctx: MlsContext;
const alice = makeIdentity();
const bob = makeIdentity();
let joined: JoinedSession;

beforeAll(async () => {
  ctx = await createMlsContext();
  const now = nowSeconds();
  const bobKp = await generateKeyPackage(ctx, bob, now);
  const created = await createOneToOne(ctx, alice, bobKp.keyPackage, { now });
  joined = await joinFromWelcome(ctx, created.welcome, created.ratchetTree, [bobKp]);
});

describe('directWelcomeMembers', () => {
  it('accepts the sender and us, signed by the sender', () => {
    expect(
      directWelcomeMembers(joined, { senderIdentityKey: alice.signingPublic }, bob.signingPublic),
    ).toBeUndefined();
  });

  it('is a sender-binding failure when someone else claims to have sent it', () => {
    const mallory = makeIdentity();
    expect(
      directWelcomeMembers(joined, { senderIdentityKey: mallory.signingPublic }, bob.signingPublic),
    ).toBe('sender_binding');
  });

  it('refuses a group that does not hold us', () => {
    expect(
      directWelcomeMembers(joined, { senderIdentityKey: alice.signingPublic }, makeIdentity().signingPublic),
    ).toBe('welcome_invalid');
  });

  it('refuses a group of other than two members', () => {
    const three = { ...joined, members: [...joined.members, joined.members[0]!] };
    expect(directWelcomeMembers(three, { senderIdentityKey: alice.signingPublic }, bob.signingPublic)).toBe(
      'welcome_invalid',
    );
  });
});

describe('welcomeSuperseded', () => {
  const small = new Uint8Array(32).fill(1);
  const large = new Uint8Array(32).fill(2);

  it('keeps the smaller group id when both sides initiated at once', () => {
    expect(welcomeSuperseded({ groupId: toHex(small), initiatedUnconfirmed: true }, large)).toBe(true);
    expect(welcomeSuperseded({ groupId: toHex(large), initiatedUnconfirmed: true }, small)).toBe(false);
  });

  it('never supersedes a Welcome when our session is confirmed or absent', () => {
    expect(welcomeSuperseded({ groupId: toHex(small), initiatedUnconfirmed: false }, large)).toBe(false);
    expect(welcomeSuperseded(undefined, large)).toBe(false);
  });
});

describe('directWelcome', () => {
  const now = nowSeconds() as UnixSeconds;
  const aliceHex = () => toHex(alice.userId) as UserIdHex;
  const stepCtx = () => ({
    mls: ctx,
    selfId: asUserId(bob.userId),
    clock: new ManualClock(now),
    random: systemRandom,
  });
  let input: DirectWelcomeInput;

  beforeAll(() => {
    const opened = {
      digest: 'ee'.repeat(32),
      envelope: { enc: new Uint8Array(32), ciphertext: new Uint8Array(1), powNonce: 1n, sentAt: now },
      inner: { senderIdentityKey: alice.signingPublic },
    } as unknown as OpenedEnvelope;
    input = {
      joined,
      opened,
      sender: aliceHex(),
      digest: 'dd'.repeat(32),
      sealKey: new Uint8Array(32).fill(7),
      now,
    };
  });

  it('sets up a new session: commits it with the peer and the replay marks, announces it, republishes', async () => {
    const step = await directWelcome(stepCtx(), { existing: undefined, known: undefined }, input);
    expect(step.drop).toBeUndefined();
    const groupId = toHex(groupIdOf(joined.state));
    expect(step.session?.groupId).toBe(groupId);
    expect(step.session?.initiatedUnconfirmed).toBe(false);
    expect(step.commit.conversations).toEqual([step.session]);
    expect(step.commit.conversations![0]!.kind).toBe('direct');
    expect(step.commit.deleteConversations).toBeUndefined();
    expect(step.commit.peers?.[0]).toMatchObject({
      userId: aliceHex(),
      sealKey: input.sealKey,
      powBits: DEFAULT_POW_BITS,
    });
    expect(step.commit.welcome).toEqual({ digest: input.digest, at: now });
    expect(step.commit.envelope?.digest).toBe(input.opened.digest);
    expect(step.commit.consumedKeyPackage?.ref).toBe(toHex(joined.consumedRef));
    expect(step.decoded).toEqual({ groupId, state: joined.state });
    expect(step.events).toEqual([{ peer: aliceHex(), groupId, role: 'joiner' }]);
    expect(step.followUps).toEqual([{ kind: 'republish' }]);
  });

  it('replaces our unconfirmed session that lost the race, and re-sends its texts afterwards', async () => {
    const larger = asGroupIdHex('ff'.repeat(32));
    const existing = {
      ...(await newDirectSession(stepCtx(), joined.state, larger, aliceHex(), true, now)),
      unconfirmedOutgoing: ['a', 'b'],
    };
    const step = await directWelcome(stepCtx(), { existing, known: undefined }, input);
    expect(step.drop).toBeUndefined();
    expect(step.commit.deleteConversations).toEqual([larger]);
    expect(step.replaces).toBe(larger);
    expect(step.followUps).toEqual([
      { kind: 'republish' },
      { kind: 'resend', peer: aliceHex(), texts: ['a', 'b'] },
    ]);
  });

  it('is superseded by our own session with the smaller id: only the replay marks and the spent KeyPackage', async () => {
    const smaller = asGroupIdHex('00'.repeat(32));
    const existing = await newDirectSession(stepCtx(), joined.state, smaller, aliceHex(), true, now);
    const step = await directWelcome(stepCtx(), { existing, known: undefined }, input);
    expect(step.drop).toBe('welcome_superseded');
    expect(step.commit.conversations).toBeUndefined();
    expect(step.commit.peers).toBeUndefined();
    expect(Object.keys(step.commit).sort()).toEqual(['consumedKeyPackage', 'envelope', 'welcome']);
    expect(step.session).toBeUndefined();
    expect(step.events).toEqual([]);
    expect(step.followUps).toEqual([{ kind: 'republish' }]);
  });
});
