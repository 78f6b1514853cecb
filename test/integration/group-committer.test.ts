/**
 * The committer's bounded work (PROTOCOL.md §9): at most 10 Adds per epoch (the rest follow in the
 * next one, none lost) and group Welcome PoW mined only up to 24 bits. Invitees here are identities
 * whose signed bundles sit retained on the broker, as any offline user's would: the committer
 * fetches and verifies them exactly as it would a running client's.
 */
import {
  encodeKeyBundle,
  generateIdentity,
  keysTopic,
  mls,
  userIdToHex,
  type GroupEvent,
  type Identity,
} from '../../framework/relay/index.js';
import { nowSeconds, RawMqtt, signedBundle } from '../support/attacker.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { GROUP_TEST_POW_BITS, GroupWorld, until, type Member } from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;
let committer: Member;
let friend: Member;
let raw: RawMqtt;
let ctx: mls.MlsContext;

beforeAll(async () => {
  broker = await getTestBroker();
  world = new GroupWorld(broker.url);
  [committer, friend] = await Promise.all([world.start(), world.start()]);
  raw = await RawMqtt.connect(broker.url);
  ctx = await mls.createMlsContext();
});

afterAll(async () => {
  await raw.close();
  await world.close();
  await broker.close();
});

/** A user who is offline: only its signed bundle, demanding `powBits`, is retained on the broker. */
async function offlineInvitee(powBits = GROUP_TEST_POW_BITS): Promise<string> {
  const identity: Identity = generateIdentity();
  const bundle = await signedBundle(ctx, identity, { issuedAt: nowSeconds(), powBits });
  await raw.publish(keysTopic(world.prefix, identity.userId), encodeKeyBundle(bundle), { retain: true });
  return userIdToHex(identity.userId);
}

const invitees = (n: number, powBits?: number) =>
  Promise.all(Array.from({ length: n }, () => offlineInvitee(powBits)));

/** How many members each of the committer's commits in this group added, in order. */
function addedPerCommit(member: Member, groupId: string): number[] {
  return member.events
    .filter(
      (e): e is Extract<GroupEvent, { kind: 'members' }> => e.kind === 'members' && e.groupId === groupId,
    )
    .map((e) => e.added.length);
}

/** How many members the committer's commits in this group added, over all of them. */
const addedInAll = (member: Member, groupId: string): number =>
  addedPerCommit(member, groupId).reduce((a, b) => a + b, 0);

async function memberIds(member: Member, groupId: string): Promise<string[]> {
  return (await member.client.group(groupId))!.members.map((m) => m.userId);
}

test('creating a group with 12 invitees: 10 Adds in the first commit, the other 2 in the next epoch', async () => {
  const ids = await invitees(12);
  const g = await committer.client.createGroup(ids);
  expect(g.members).toHaveLength(11);
  await until(async () => (await memberIds(committer, g.groupId)).length === 13, 30_000, '13 members');
  expect(new Set(await memberIds(committer, g.groupId))).toEqual(new Set([committer.client.userId, ...ids]));
  // A commit's event follows the broker's acknowledgement of its rows, a moment after the commit.
  await until(() => addedInAll(committer, g.groupId) >= 2, 30_000, "the second commit's event");
  expect(addedPerCommit(committer, g.groupId)).toEqual([2]);
});

test('11 Adds proposed by a member: the committer commits 10, then the last one, none lost', async () => {
  const g = await committer.client.createGroup([friend.client.userId]);
  await until(() => friend.events.some((e) => e.kind === 'joined' && e.groupId === g.groupId));
  const ids = await invitees(11);
  await friend.client.addToGroup(g.groupId, ids);
  await until(async () => (await memberIds(committer, g.groupId)).length === 13, 30_000, '13 members');
  await until(() => addedInAll(committer, g.groupId) >= 11, 30_000, 'the events of both commits');
  expect(addedPerCommit(committer, g.groupId)).toEqual([10, 1]);
});

test('an Add for an invitee demanding over 24 PoW bits is left out; the others in its batch go in', async () => {
  const g = await committer.client.createGroup([friend.client.userId]);
  await until(() => friend.events.some((e) => e.kind === 'joined' && e.groupId === g.groupId));
  const [costly] = await invitees(1, 25);
  const [cheap] = await invitees(1);
  // A proposer may ask (§4 lets a sender mine up to 28 bits); the committer does not mine it.
  await friend.client.addToGroup(g.groupId, [costly!, cheap!]);
  await until(async () => (await memberIds(committer, g.groupId)).includes(cheap!), 30_000, 'cheap added');
  expect(await memberIds(committer, g.groupId)).not.toContain(costly);
  // The committer's own invitation names the limit instead of mining.
  await expect(committer.client.addToGroup(g.groupId, [costly!])).rejects.toThrow(/at most 24/);
});
