/**
 * A RelayClient with `broker.shareGroup` (issue #13 groundwork): its inbox and group topics are
 * MQTT 5 shared subscriptions. Through Mosquitto it still talks 1:1 and in a group (its group
 * subscription then cannot use No Local, so its own group messages come back to it and must do no
 * harm); on the embedded broker, which has no shared subscriptions, start() fails naming the fix.
 */
import {
  MemoryRelayStore,
  RelayClient,
  SharedSubscriptionsUnsupportedError,
  startEmbeddedBroker,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { getTestBroker, testBrokers, uniqueName } from '../support/broker.js';
import { groupTexts, GroupWorld, until } from '../support/groups.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');

test('on the embedded broker, start() with a shareGroup fails and names the fix', async () => {
  const embedded = await startEmbeddedBroker({ port: 0 });
  const client = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: embedded.url, shareGroup: uniqueName('bots'), replicaSlot: 0 },
    topicPrefix: uniqueName('share'),
  });
  try {
    const started = client.start();
    await expect(started).rejects.toThrow(SharedSubscriptionsUnsupportedError);
    await expect(started).rejects.toThrow(/an MQTT 5 broker with shared subscriptions, such as Mosquitto/);
    expect(client.connected).toBe(false);
  } finally {
    await client.stop().catch(() => undefined);
    await embedded.close();
  }
});

(hasMosquitto ? test : test.skip)(
  'through Mosquitto, a bot subscribed through a share group answers 1:1 and in a group, once each',
  async () => {
    const broker = await getTestBroker('mosquitto');
    const world = new GroupWorld(broker.url);
    try {
      const bot = await world.start(new MemoryRelayStore(), {
        broker: { url: broker.url, shareGroup: uniqueName('bots'), replicaSlot: 0 },
      });
      bot.client.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
      const peer = await world.start();
      const direct = (got: ReceivedMessage[]) =>
        got.filter((m) => m.conversation.kind !== 'group').map((m) => m.content.content);

      await peer.client.send(bot.client.userId, 'hi');
      await until(() => direct(peer.messages).length === 1, 30_000, 'the 1:1 echo');

      const group = await bot.client.createGroup([peer.client.userId]);
      await until(() => peer.events.some((e) => e.kind === 'joined'), 30_000, 'the peer to join');
      await peer.client.sendToGroup(group.groupId, 'in the group');
      await until(
        () => groupTexts(peer, group.groupId).includes('echo: in the group'),
        30_000,
        'the group echo',
      );
      await bot.client.sendToGroup(group.groupId, 'from the bot');
      await until(() => groupTexts(peer, group.groupId).includes('from the bot'), 30_000, 'the bot message');
      await new Promise((r) => setTimeout(r, 500)); // a duplicate, or an echo of its own message, would come now

      expect(direct(peer.messages)).toEqual(['echo: hi']);
      expect(groupTexts(peer, group.groupId)).toEqual(['echo: in the group', 'from the bot']);
      // The bot does not take its own group messages for someone else's.
      expect(groupTexts(bot, group.groupId)).toEqual(['in the group']);
      // Its two group messages (the echo, 'from the bot') came back without No Local and were
      // recognised as its own, as duplicates.
      expect(bot.client.drops.get('duplicate')).toBe(2);
    } finally {
      await world.close();
      await broker.close();
    }
  },
  60_000,
);
