/**
 * Group order when processing a message fails for a reason other than its input (PROTOCOL.md §9: a
 * group's messages are processed one at a time in arrival order). The receiver's store fails the
 * commit of the first of three messages once, after the other two reached the receiver; the three
 * must still be delivered in the order they were sent. (With three messages in flight the transport
 * does not park the failing head, so before the fix its retry was the broker's redelivery after a
 * reconnect; a parked head's retry, the parking's, joined the lane behind the later ones alike. The
 * retry now happens in the lane, before the failure reaches either.)
 */
import { RawMqtt } from '../support/attacker.js';
import { FailOnceStore } from '../support/fail-once-store.js';
import { groupTexts, until, useGroupWorld } from '../support/groups.js';

const fixture = useGroupWorld();

test('a group message whose commit failed once is still processed before the later messages of its group', async () => {
  const store = new FailOnceStore();
  const [alice, bob] = [await fixture.world().start(), await fixture.world().start(store)];
  const group = await alice!.client.createGroup([bob!.client.userId]);
  await until(() => bob!.events.some((e) => e.kind === 'joined' && e.groupId === group.groupId));

  const raw = await RawMqtt.connect(fixture.broker().url);
  fixture.onCleanup(() => raw.close());
  const topic = `${fixture.world().prefix}/g/${group.topicId}/m`;
  await raw.watch(topic);
  const already = raw.captured(topic).length;
  // The first message's commit fails only once the two after it are on the wire (and, a grace
  // later, in bob's lane): a retry from outside the lane would come after them.
  store.armed = async () => {
    await until(() => raw.captured(topic).length >= already + 3, 30_000, 'three messages on the wire');
    await new Promise((r) => setTimeout(r, 500));
  };
  for (const text of ['one', 'two', 'three']) await alice!.client.sendToGroup(group.groupId, text);

  await until(() => groupTexts(bob!, group.groupId).length >= 3, 60_000, 'three messages at bob');
  expect(store.failures).toBe(1);
  expect(groupTexts(bob!, group.groupId)).toEqual(['one', 'two', 'three']);
}, 120_000);
