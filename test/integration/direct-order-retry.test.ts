/**
 * 1:1 order when processing a message fails for a reason other than its input: a sender's messages
 * are processed one at a time in arrival order, in the sender's lane. The receiver's store fails the
 * commit of the first of three messages once, after the other two reached the receiver; the three
 * must still be delivered in the order they were sent. (Before, the failure went to the transport,
 * and its retry, the broker's redelivery after a reconnect or the parking's, joined the sender's
 * lane behind the two later messages. The retry now happens in the lane, lane-retry.ts.)
 */
import { inboxTopic, userIdFromHex } from '../../framework/relay/index.js';
import { RawMqtt } from '../support/attacker.js';
import { FailOnceStore, FailWhileStore } from '../support/fail-once-store.js';
import { until, useGroupWorld, type Member } from '../support/groups.js';

const fixture = useGroupWorld();

function directTexts(member: Member, from: string): string[] {
  return member.messages
    .filter((m) => m.conversation.kind !== 'group' && m.from === from)
    .map((m) => m.content.content);
}

test('a 1:1 message whose commit failed once is still processed before the later messages of its sender', async () => {
  const store = new FailOnceStore();
  const [alice, bob] = [await fixture.world().start(), await fixture.world().start(store)];
  const from = alice!.client.userId;
  // The session first (Welcome and its first message), so the three below are plain messages.
  await alice!.client.send(bob!.client.userId, 'hello');
  await until(() => directTexts(bob!, from).length >= 1, 30_000, 'hello at bob');

  const raw = await RawMqtt.connect(fixture.broker().url);
  fixture.onCleanup(() => raw.close());
  const topic = inboxTopic(fixture.world().prefix, userIdFromHex(bob!.client.userId));
  await raw.watch(topic);
  const already = raw.captured(topic).length;
  // The first message's commit fails only once the two after it are on the wire (and, a grace
  // later, in bob's lane): a retry from outside the lane would come after them.
  store.armed = async () => {
    await until(() => raw.captured(topic).length >= already + 3, 30_000, 'three messages on the wire');
    await new Promise((r) => setTimeout(r, 500));
  };
  for (const text of ['one', 'two', 'three']) await alice!.client.send(bob!.client.userId, text);

  await until(() => directTexts(bob!, from).length >= 4, 60_000, 'three messages at bob');
  expect(store.failures).toBe(1);
  expect(directTexts(bob!, from)).toEqual(['hello', 'one', 'two', 'three']);
}, 120_000);

test("while a sender's failed message waits for its retry, another sender's messages are processed", async () => {
  const store = new FailWhileStore();
  const [alice, carol, bob] = [
    await fixture.world().start(),
    await fixture.world().start(),
    await fixture.world().start(store),
  ];
  const [fromAlice, fromCarol] = [alice!.client.userId, carol!.client.userId];
  await alice!.client.send(bob!.client.userId, 'hello');
  await carol!.client.send(bob!.client.userId, 'hi');
  await until(
    () => directTexts(bob!, fromAlice).length >= 1 && directTexts(bob!, fromCarol).length >= 1,
    30_000,
    'first contacts at bob',
  );
  const session = bob!.messages.find((m) => m.from === fromAlice)!.conversation.groupId;
  // Alice's messages fail at bob until carol's later message got through: only if alice's lane
  // alone waits does carol's come first, and alice's still in their order after it.
  store.failing = { groupId: session, until: () => directTexts(bob!, fromCarol).length >= 2 };
  await alice!.client.send(bob!.client.userId, 'one');
  await until(() => store.failures >= 1, 30_000, "alice's first failure");
  await alice!.client.send(bob!.client.userId, 'two');
  await carol!.client.send(bob!.client.userId, 'carol');

  await until(() => directTexts(bob!, fromAlice).length >= 3, 60_000, "alice's messages at bob");
  const order = bob!.messages.map((m) => m.content.content);
  expect(order.indexOf('carol')).toBeLessThan(order.indexOf('one'));
  // Carol's got through while alice's was still retried in its lane: fewer than its six attempts
  // (a lane shared by all senders held carol's until they ran out and the broker redelivered).
  expect(store.failures).toBeLessThan(6);
  expect(directTexts(bob!, fromAlice)).toEqual(['hello', 'one', 'two']);
}, 120_000);

test("stopping the client ends a failed message's retries in its lane at once", async () => {
  const store = new FailWhileStore();
  const [alice, bob] = [await fixture.world().start(), await fixture.world().start(store)];
  await alice!.client.send(bob!.client.userId, 'hello');
  await until(() => directTexts(bob!, alice!.client.userId).length >= 1, 30_000, 'hello at bob');
  const session = bob!.messages[0]!.conversation.groupId;
  store.failing = { groupId: session, until: () => false };
  await alice!.client.send(bob!.client.userId, 'one');
  // Three attempts: the lane now waits 1 s, then 2 s and 4 s, for the last three.
  await until(() => store.failures >= 3, 30_000, 'three failed attempts');
  const before = store.failures;
  await fixture.world().stop(bob!);
  // At most the attempt running when stop() came; without the stop ending them, all six.
  expect(store.failures).toBeLessThanOrEqual(before + 1);
  expect(store.failures).toBeLessThan(6);
}, 120_000);
