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
import { directWelcomeMembers, welcomeSuperseded } from '../../framework/relay/steps/direct-welcome.js';
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
