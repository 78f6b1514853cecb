/**
 * QoS 0 on a group topic (PROTOCOL.md §3, issue 10 hole 3): a delivery at QoS 0 is dropped unread
 * (`qos`), through the real broker; the same bytes at QoS 1 reach the group checks (control).
 */
import { groupTopic, type DropReason, type TopicId } from '../../framework/relay/index.js';
import { RawMqtt } from '../support/attacker.js';
import { getTestBroker, type TestBroker } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;
let committer: Member;
let victim: Member;
let raw: RawMqtt;
let topic: string;

beforeAll(async () => {
  broker = await getTestBroker();
  world = new GroupWorld(broker.url);
  [committer, victim] = await Promise.all([world.start(), world.start()]);
  raw = await RawMqtt.connect(broker.url);
  const g = await committer.client.createGroup([victim.client.userId]);
  topic = groupTopic(world.prefix, g.topicId as TopicId);
  await until(() => victim.events.some((e) => e.kind === 'joined' && e.groupId === g.groupId));
});

afterAll(async () => {
  await raw.close();
  await world.close();
  await broker.close();
});

function nextDrop(): Promise<DropReason> {
  return new Promise((resolve) => victim.client.once('drop', (d) => resolve(d.reason)));
}

test('bytes at QoS 0 on a group topic → qos; the same bytes at QoS 1 reach the group checks', async () => {
  const junk = Uint8Array.of(0xa1, 0x00, 0x01);
  let dropped = nextDrop();
  await raw.publish(topic, junk, { qos: 0 });
  expect(await dropped).toBe('qos');
  dropped = nextDrop();
  await raw.publish(topic, junk, { qos: 1 });
  expect(await dropped).not.toBe('qos');
});
