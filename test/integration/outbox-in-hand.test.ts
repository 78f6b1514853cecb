/**
 * Issue 12: in steady state the outbox is published from the rows in hand, with no read-back of
 * the store per message, 1:1 and in groups, through the real broker and (when it answers) the
 * bot on Postgres. Acknowledged rows are still deleted.
 */
import { connect } from 'mqtt';
import { MemoryRelayStore, RelayClient, type RelayStore } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { groupTexts, GroupWorld, until } from '../support/groups.js';

let broker: TestBroker;
let world: GroupWorld;
const clients: RelayClient[] = [];
const stores: RelayStore[] = [];

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
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await world.close();
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

/** The store, with its listOutbox calls counted (every other method passes through). */
function countingListOutbox(store: RelayStore): { store: RelayStore; calls: () => number } {
  let calls = 0;
  const counted = new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = (value as (...a: unknown[]) => unknown).bind(target);
      if (prop !== 'listOutbox') return fn;
      return (...args: unknown[]) => {
        calls++;
        return fn(...args);
      };
    },
  });
  return { store: counted, calls: () => calls };
}

/** Every acknowledged row deleted (the cleanup runs in batches shortly after the PUBACKs). */
async function outboxEmptied(store: RelayStore): Promise<void> {
  await until(async () => (await store.listOutbox()).length === 0, 10_000, 'outbox emptied');
}

test('1:1: replies and sends are published with no read-back of the outbox per message', async () => {
  const prefix = uniqueName('relay-inhand');
  const botStore = await world.durableStore();
  stores.push(botStore);
  const bot = countingListOutbox(botStore);
  const botClient = await RelayClient.create({
    store: bot.store,
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
  });
  clients.push(botClient);
  botClient.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  await botClient.start();
  const peerStore = new MemoryRelayStore();
  const peer = countingListOutbox(peerStore);
  const peerClient = await RelayClient.create({
    store: peer.store,
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
  });
  clients.push(peerClient);
  const replies: string[] = [];
  peerClient.on('message', (m) => replies.push(m.content.content));
  await peerClient.start();
  // First contact and its reply: past start-up, in steady state.
  await peerClient.send(botClient.userId, 'hello');
  await until(() => replies.length === 1, 30_000, 'first reply');
  const botBefore = bot.calls();
  const peerBefore = peer.calls();

  const N = 40;
  await Promise.all(Array.from({ length: N }, (_, i) => peerClient.send(botClient.userId, `m${i}`)));
  await until(() => replies.length === N + 1, 30_000, `${N} replies`);

  expect(bot.calls() - botBefore).toBe(0);
  expect(peer.calls() - peerBefore).toBe(0);
  expect(replies.slice(1).sort()).toEqual(Array.from({ length: N }, (_, i) => `echo: m${i}`).sort());
  await outboxEmptied(botStore);
  await outboxEmptied(peerStore);
});

test('groups: posts and the bot’s replies are published with no read-back of the outbox per message', async () => {
  const botStore = await world.durableStore();
  stores.push(botStore);
  const bot = countingListOutbox(botStore);
  const botMember = await world.start(bot.store);
  botMember.client.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  const aliceStore = new MemoryRelayStore();
  const alice = countingListOutbox(aliceStore);
  const aliceMember = await world.start(alice.store);
  const joined = new Promise<void>((r) => aliceMember.client.on('group', (e) => e.kind === 'joined' && r()));
  const { groupId } = await botMember.client.createGroup([aliceMember.client.userId]);
  await joined;
  await aliceMember.client.sendToGroup(groupId, 'hello');
  await until(() => groupTexts(aliceMember, groupId).length === 1, 30_000, 'first group reply');
  const botBefore = bot.calls();
  const aliceBefore = alice.calls();

  const N = 20;
  for (let i = 0; i < N; i++) await aliceMember.client.sendToGroup(groupId, `g${i}`);
  await until(() => groupTexts(aliceMember, groupId).length === N + 1, 30_000, `${N} group replies`);

  expect(bot.calls() - botBefore).toBe(0);
  expect(alice.calls() - aliceBefore).toBe(0);
  expect(groupTexts(aliceMember, groupId).slice(1)).toEqual(
    Array.from({ length: N }, (_, i) => `echo: g${i}`),
  );
  await outboxEmptied(botStore);
  await outboxEmptied(aliceStore);
});

test('after the broker drops the connection (a session takeover), the outbox is read back', async () => {
  const prefix = uniqueName('relay-inhand-takeover');
  const botStore = new MemoryRelayStore();
  const bot = countingListOutbox(botStore);
  const botClient = await RelayClient.create({
    store: bot.store,
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
  });
  clients.push(botClient);
  botClient.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  await botClient.start();
  const peerClient = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
  });
  clients.push(peerClient);
  const replies: string[] = [];
  peerClient.on('message', (m) => replies.push(m.content.content));
  await peerClient.start();
  await peerClient.send(botClient.userId, 'before');
  await until(() => replies.length === 1, 30_000, 'first reply');
  const before = bot.calls();

  const intruder = connect(broker.url, {
    protocolVersion: 5,
    clientId: `relay-${botClient.userId}`,
    clean: false,
    reconnectPeriod: 0,
    // Keeps the bot's session (its subscriptions) for when it reconnects.
    properties: { sessionExpiryInterval: 300 },
  });
  await new Promise<void>((resolve, reject) => {
    intruder.once('connect', () => resolve());
    intruder.once('error', reject);
  });
  await intruder.endAsync();
  await until(() => bot.calls() > before, 30_000, 'a read-back after the reconnect');
  await peerClient.send(botClient.userId, 'after');
  await until(() => replies.length === 2, 30_000, 'reply after the reconnect');
  expect(replies).toEqual(['echo: before', 'echo: after']);
});
