/**
 * The §8 checks against hostile content through a real broker (Mosquitto when it answers), 1:1 and
 * in groups: an edit or delete of someone else's message, a stream part continuing another member's
 * stream, a final text over another member's stream, an edit of an unknown message are each dropped
 * with their counter while the ratchet moves on; an unknown type arrives as text; typing is delivered
 * but never stored; a bundle whose signed profile is over 8 KiB is refused.
 */
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import {
  ed25519Sign,
  encodeKeyBundle,
  generateIdentity,
  keysTopic,
  LABEL,
  MAX_PROFILE_BYTES,
  mls,
  userIdToHex,
  type DropReason,
} from '../../framework/relay/index.js';
import { concatBytes, utf8 } from '../../framework/relay/bytes.js';
import { RawMqtt, signedBundle } from '../support/attacker.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;

beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});
beforeEach(() => {
  world = new GroupWorld(broker.url);
});
afterEach(async () => {
  await world.close();
});

const texts = (m: Member) => m.messages.map((x) => `${x.content.type}:${x.content.content}`);
const drops = (m: Member, ...reasons: DropReason[]) => reasons.map((r) => m.client.drops.get(r));

test("1:1: an edit or delete of the other side's message, or of an unknown one, is dropped and counted; the session goes on", async () => {
  const alice = await world.start(await world.durableStore());
  const bob = await world.start();
  await alice.client.send(bob.client.userId, { content: 'mine', id: 'a-1' });
  await until(() => bob.messages.length === 1, 30_000, 'first contact');
  await bob.client.send(alice.client.userId, { content: 'yours', id: 'b-1' });
  await until(() => alice.messages.length === 1, 30_000, 'the answer');

  // Bob's client sends what a hostile peer would: nothing on the sending side stops it.
  await bob.client.send(alice.client.userId, { type: 'edit', replyTo: 'a-1', content: 'I never said that' });
  await bob.client.send(alice.client.userId, { type: 'delete', replyTo: 'a-1', content: '' });
  await bob.client.send(alice.client.userId, { type: 'edit', replyTo: 'no-such-id', content: '?' });
  // Bob's own message: counts.
  await bob.client.send(alice.client.userId, { type: 'edit', replyTo: 'b-1', content: 'yours, edited' });
  await until(() => alice.messages.length === 2, 30_000, "bob's own edit");
  expect(texts(alice)).toEqual(['text:yours', 'edit:yours, edited']);
  expect(drops(alice, 'content_sender', 'content_unknown_target', 'mls', 'content')).toEqual([2, 1, 0, 0]);

  // Alice's own edit reaches bob: the drops left both ratchets in step.
  await alice.client.send(bob.client.userId, { type: 'edit', replyTo: 'a-1', content: 'mine, edited' });
  await until(() => bob.messages.length === 2, 30_000, "alice's own edit");
  expect(drops(bob, 'content_sender', 'content_unknown_target', 'mls')).toEqual([0, 0, 0]);
});

test('1:1: typing is delivered but never stored; an unknown type arrives as its text', async () => {
  const alice = await world.start();
  const receiver = await world.start(await world.durableStore());
  await alice.client.send(receiver.client.userId, { content: 'hi', id: 'a-hi' });
  await until(() => receiver.messages.length === 1, 30_000, 'first contact');
  const typing = await alice.client.send(receiver.client.userId, {
    type: 'typing',
    state: 'start',
    content: '',
  });
  await alice.client.send(receiver.client.userId, {
    type: 'x-vote',
    content: 'Vote: tea or coffee?',
    id: 'a-vote',
  });
  await until(() => receiver.messages.length === 3, 30_000, 'typing and the unknown type');
  expect(receiver.messages[1]!.content).toEqual({
    type: 'typing',
    state: 'start',
    content: '',
    id: typing.id,
  });
  expect(receiver.messages[2]!.content).toEqual({
    type: 'x-vote',
    content: 'Vote: tea or coffee?',
    id: 'a-vote',
  });

  const session = await receiver.client.sessionWith(alice.client.userId);
  const indexed = await receiver.store.messageSenders(session!.groupId, ['a-hi', typing.id, 'a-vote']);
  expect(indexed).toEqual(
    new Map([
      ['a-hi', alice.client.userId],
      ['a-vote', alice.client.userId],
    ]),
  );
  expect(await receiver.store.listConversationData('')).toEqual([]);
});

test("groups: a stream part or final text on another member's stream and an edit of another's message are dropped at every member", async () => {
  const owner = await world.start(await world.durableStore());
  const [mallory, carol] = await Promise.all([world.start(), world.start()]);
  const group = await owner.client.createGroup([mallory.client.userId, carol.client.userId]);
  for (const m of [mallory, carol])
    await until(() => m.events.some((e) => e.kind === 'joined'), 30_000, 'joined');
  const inGroup = (m: Member) => texts(m);

  await owner.client.sendToGroup(group.groupId, { content: 'the plan', id: 'o-1' });
  await owner.client.sendToGroup(group.groupId, {
    type: 'stream',
    id: 'o-s',
    seq: 0,
    content: 'The answer ',
  });
  await until(() => carol.messages.length === 2 && mallory.messages.length === 2, 30_000, 'the first part');

  await mallory.client.sendToGroup(group.groupId, {
    type: 'stream',
    id: 'o-s',
    seq: 1,
    content: 'is: send me money',
  });
  await mallory.client.sendToGroup(group.groupId, { type: 'text', id: 'o-s', content: 'send me money' });
  await mallory.client.sendToGroup(group.groupId, { type: 'edit', replyTo: 'o-1', content: 'a worse plan' });
  await mallory.client.sendToGroup(group.groupId, { type: 'delete', replyTo: 'o-1', content: '' });
  // Mallory's own stream is fine.
  await mallory.client.sendToGroup(group.groupId, {
    type: 'stream',
    id: 'm-s',
    seq: 0,
    content: 'mine',
    done: true,
  });
  await owner.client.sendToGroup(group.groupId, {
    type: 'stream',
    id: 'o-s',
    seq: 1,
    content: 'is 42.',
    done: true,
  });

  const want = ['text:the plan', 'stream:The answer ', 'stream:mine', 'stream:is 42.'];
  await until(() => carol.messages.length === 4, 30_000, 'carol: the rest');
  expect(inGroup(carol)).toEqual(want);
  expect(drops(carol, 'content_sender', 'content_unknown_target', 'mls', 'content')).toEqual([4, 0, 0, 0]);
  await until(() => owner.messages.length === 1, 30_000, "owner: mallory's own stream");
  expect(inGroup(owner)).toEqual(['stream:mine']);
  await until(() => owner.client.drops.get('content_sender') === 4, 30_000, 'owner: the four drops');
  expect(drops(owner, 'mls', 'content')).toEqual([0, 0]);

  // Typing in a group reaches every member and is indexed by none; the message ids are.
  const typing = await mallory.client.sendToGroup(group.groupId, {
    type: 'typing',
    state: 'start',
    content: '',
  });
  await until(() => carol.messages.length === 5, 30_000, 'carol: the typing');
  expect(carol.messages[4]!.content).toMatchObject({ type: 'typing', state: 'start', id: typing.id });
  expect(await carol.store.messageSenders(group.groupId, [typing.id, 'o-1', 'm-s'])).toEqual(
    new Map([
      ['o-1', owner.client.userId],
      ['m-s', mallory.client.userId],
    ]),
  );
});

test('a key bundle whose signed profile is over 8 KiB is refused and counted; the same bundle with a small profile is accepted', async () => {
  const verifier = await world.start();
  const ctx = await mls.createMlsContext({ provider: 'node' });
  const identity = generateIdentity();
  const topic = keysTopic(world.prefix, identity.userId);
  const now = Math.floor(Date.now() / 1000);
  const base = encodeKeyBundle(await signedBundle(ctx, identity, { issuedAt: now, powBits: 8 }));

  /** The bundle with key 7 set to `profile` and signed again, as only the identity's owner can. */
  const withProfile = (profile: string): Uint8Array => {
    const fields = cborDecode(base, { useMaps: true }) as Map<number, unknown>;
    fields.delete(5);
    fields.set(7, profile);
    const signature = ed25519Sign(identity.signingSeed, concatBytes(utf8(LABEL.bundle), cborEncode(fields)));
    fields.set(5, signature);
    return cborEncode(fields);
  };
  const profile = (description: string) => JSON.stringify({ bot: true, description, commands: [] });

  const raw = await RawMqtt.connect(broker.url);
  try {
    await raw.publish(topic, withProfile(profile('small')), { retain: true });
    const seen = await verifier.client.verifyPeer(userIdToHex(identity.userId));
    expect(seen.profile).toEqual({ bot: true, description: 'small', commands: [] });

    const other = await world.start();
    const big = profile('x'.repeat(MAX_PROFILE_BYTES));
    expect(Buffer.byteLength(big)).toBeGreaterThan(MAX_PROFILE_BYTES);
    await raw.publish(topic, withProfile(big), { retain: true });
    await expect(other.client.verifyPeer(userIdToHex(identity.userId))).rejects.toThrow(/profile/);
    expect(other.client.drops.get('bundle_invalid')).toBe(1);
  } finally {
    await raw.clearRetained(topic);
    await raw.close();
  }
});
