/**
 * The wire tap of the agent crash test (test/support/generation-tap.ts) can fail: a second,
 * different message under one sender's (leaf, epoch, generation) on a group topic is reported as a
 * reused generation, while a copy of the same bytes counts as a copy only. The different message is
 * made by flipping the last byte of a real one (its content's AEAD tag): its SenderData still
 * decrypts to the same generation, and the receiver drops it as `mls`, as it would a reuse.
 */
import { connect } from 'mqtt';
import { fromHex } from '../../framework/relay/bytes.js';
import type { GroupId } from '../../framework/relay/brand.js';
import { decodeGroupPayload, encodeGroupPayload } from '../../framework/relay/envelope.js';
import { groupTopic, topicIdForGroup } from '../../framework/relay/topics.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { GenerationTap } from '../support/generation-tap.js';
import { GroupWorld, until } from '../support/groups.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

test('a second message under one generation is reported; a copy of the same bytes is not', async () => {
  const world = new GroupWorld(broker.url);
  const raw = connect(broker.url, { protocolVersion: 5, clientId: uniqueName('raw') });
  let tap: GenerationTap | undefined;
  try {
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    const [a, b] = [await world.start(), await world.start()];
    const { groupId } = await a.client.createGroup([b.client.userId]);
    await until(() => b.events.some((e) => e.kind === 'joined'), 30_000, 'b joining');
    tap = await GenerationTap.start(broker.url, world.prefix, a.client.userId);
    await tap.tapGroup(groupId, b.store);
    const topic = groupTopic(world.prefix, topicIdForGroup(fromHex(groupId) as GroupId));
    const seen: Uint8Array[] = [];
    raw.on('message', (_t, payload) => seen.push(new Uint8Array(payload)));
    await raw.subscribeAsync(topic, { qos: 1 });

    await a.client.sendToGroup(groupId, 'hello');
    await until(() => b.messages.length === 1 && seen.length === 1, 30_000, 'the message arriving');
    await raw.publishAsync(topic, Buffer.from(seen[0]!), { qos: 1 });
    await until(() => seen.length === 2, 30_000, 'the copy arriving');
    await tap.settle();
    expect({ decoded: tap.decoded, copies: tap.copies, reused: tap.reused() }).toEqual({
      decoded: 1,
      copies: 1,
      reused: [],
    });

    const forged = decodeGroupPayload(seen[0]!).slice();
    forged[forged.length - 1]! ^= 1;
    await raw.publishAsync(topic, Buffer.from(encodeGroupPayload(forged)), { qos: 1 });
    await until(() => b.client.drops.get('mls') === 1, 30_000, 'b dropping the altered message');
    await tap.settle();
    expect(tap.failures).toEqual([]);
    expect(tap.reused()).toEqual([{ key: expect.stringContaining('generation 0') as string, messages: 2 }]);
  } finally {
    await tap?.close();
    await raw.endAsync(true);
    await world.close();
  }
});
