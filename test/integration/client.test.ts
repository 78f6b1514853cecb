/**
 * Two RelayClients with separate identities talk through a real broker (Mosquitto when it answers,
 * else the embedded one): first contact with PoW at 18 bits, then access tokens.
 */
import { randomBytes } from 'node:crypto';
import {
  encodeEnvelope,
  inboxTopic,
  MemoryRelayStore,
  RelayClient,
  userIdFromHex,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { nowSeconds, RawMqtt } from '../support/attacker.js';
import { uniqueName } from '../support/broker.js';
import { useRelayClients } from '../support/relay-clients.js';

const relay = useRelayClients();
const { clients } = relay;

async function startClient(prefix: string, store = new MemoryRelayStore(), powBits = 18) {
  const client = await relay.create({
    store,
    topicPrefix: prefix,
    powBits,
  });
  await client.start();
  return client;
}

function collect(client: RelayClient): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  return got;
}

async function until(cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('first contact with PoW at 18 bits, then 100 messages each way with access tokens', async () => {
  const prefix = uniqueName('relay');
  const alice = await startClient(prefix);
  const bob = await startClient(prefix);
  const atAlice = collect(alice);
  const atBob = collect(bob);

  await alice.send(bob.userId, 'hello bob');
  await until(() => atBob.length === 1);
  expect(atBob[0]!.from).toBe(alice.userId);
  expect(atBob[0]!.content.content).toBe('hello bob');

  for (let i = 0; i < 100; i++) {
    await alice.send(bob.userId, `a${i}`);
    await bob.send(alice.userId, `b${i}`);
  }
  await until(() => atBob.length === 101 && atAlice.length === 100);
  expect(atBob.slice(1).map((m) => m.content.content)).toEqual([...Array(100).keys()].map((i) => `a${i}`));
  expect(atAlice.map((m) => m.content.content)).toEqual([...Array(100).keys()].map((i) => `b${i}`));
  expect(alice.drops.total()).toBe(0);
  expect(bob.drops.total()).toBe(0);
  expect(await alice.peers()).toEqual([bob.userId]);
});

test('both sides initiating at once end in one shared session and lose nothing', async () => {
  const prefix = uniqueName('relay');
  const alice = await startClient(prefix);
  const bob = await startClient(prefix);
  const atAlice = collect(alice);
  const atBob = collect(bob);

  await Promise.all([alice.send(bob.userId, 'from alice'), bob.send(alice.userId, 'from bob')]);
  await until(() => atAlice.length >= 1 && atBob.length >= 1);
  const [a, b] = [await alice.sessionWith(bob.userId), await bob.sessionWith(alice.userId)];
  expect(a?.groupId).toBeDefined();
  expect(a?.groupId).toBe(b?.groupId);

  await alice.send(bob.userId, 'after race a');
  await bob.send(alice.userId, 'after race b');
  await until(() => atBob.some((m) => m.content.content === 'after race a'));
  await until(() => atAlice.some((m) => m.content.content === 'after race b'));
  expect(atBob.map((m) => m.content.content)).toContain('from alice');
  expect(atAlice.map((m) => m.content.content)).toContain('from bob');
  expect(alice.drops.get('mls') + bob.drops.get('mls')).toBe(0);
});

test('a client restarted from its stored state continues the session', async () => {
  const prefix = uniqueName('relay');
  const aliceStore = new MemoryRelayStore();
  const alice = await startClient(prefix, aliceStore);
  const bob = await startClient(prefix);
  const atBob = collect(bob);
  await alice.send(bob.userId, 'before restart');
  await until(() => atBob.length === 1);
  const group = (await alice.sessionWith(bob.userId))?.groupId;

  await alice.stop();
  clients.splice(clients.indexOf(alice), 1);
  // Sent while alice is offline: her persistent MQTT session keeps it for her.
  await bob.send(alice.userId, 'while you were away');

  const alice2 = await relay.create({
    store: aliceStore,
    topicPrefix: prefix,
  });
  const atAlice2 = collect(alice2);
  await alice2.start();
  expect(alice2.userId).toBe(alice.userId);
  await until(() => atAlice2.length === 1);
  expect(atAlice2[0]!.content.content).toBe('while you were away');
  await alice2.send(bob.userId, 'after restart');
  await until(() => atBob.length === 2);
  expect(atBob[1]!.content.content).toBe('after restart');
  expect((await alice2.sessionWith(bob.userId))?.groupId).toBe(group);
});

test('the non-committer asks for key updates and the committer commits them', async () => {
  const prefix = uniqueName('relay');
  const storeA = new MemoryRelayStore();
  const alice = await relay.create({
    store: storeA,
    topicPrefix: prefix,
    updateEveryMessages: 3,
  });
  const bob = await relay.create({
    store: new MemoryRelayStore(),
    topicPrefix: prefix,
    updateEveryMessages: 3,
  });
  await Promise.all([alice.start(), bob.start()]);
  const atAlice = collect(alice);
  const atBob = collect(bob);
  await alice.send(bob.userId, 'start');
  await until(() => atBob.length === 1);
  const startEpoch = (await alice.sessionWith(bob.userId))!.epoch;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 4; i++) await bob.send(alice.userId, `b${round}.${i}`);
    await until(() => atAlice.length === (round + 1) * 4);
    await alice.send(bob.userId, `a${round}`);
    await until(() => atBob.length === round + 2);
  }
  const endEpoch = (await alice.sessionWith(bob.userId))!.epoch;
  expect(endEpoch).toBeGreaterThanOrEqual(startEpoch + 3n);
  expect((await bob.sessionWith(alice.userId))!.epoch).toBe(endEpoch);
  expect(alice.drops.total() + bob.drops.total()).toBe(0);
});

test('a committer that only replies still commits the peer’s Update proposals (§7)', async () => {
  const prefix = uniqueName('relay');
  const bot = await relay.create({
    store: new MemoryRelayStore(),
    topicPrefix: prefix,
  });
  const peer = await relay.create({
    store: new MemoryRelayStore(),
    topicPrefix: prefix,
    updateEveryMessages: 3,
  });
  await Promise.all([bot.start(), peer.start()]);
  bot.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  const atPeer = collect(peer);
  // The bot writes first, so it made the session and is its committer; from then on it only replies.
  await bot.send(peer.userId, 'hello');
  await until(() => atPeer.length === 1);
  const startEpoch = (await peer.sessionWith(bot.userId))!.epoch;
  for (let i = 0; i < 12; i++) {
    await peer.send(bot.userId, `p${i}`);
    await until(() => atPeer.length === i + 2);
  }
  expect(atPeer.slice(1).map((m) => m.content.content)).toEqual(
    Array.from({ length: 12 }, (_, i) => `echo: p${i}`),
  );
  // Every Update the peer proposed was committed with one of the bot's replies.
  const endEpoch = (await peer.sessionWith(bot.userId))!.epoch;
  expect(endEpoch).toBeGreaterThanOrEqual(startEpoch + 3n);
  expect((await bot.sessionWith(peer.userId))!.epoch).toBe(endEpoch);
  expect(bot.drops.total() + peer.drops.total()).toBe(0);
});

test('a transactional handler replies with reply_to, committed with the message it answers', async () => {
  const prefix = uniqueName('relay');
  const botStore = new MemoryRelayStore();
  const bot = await startClient(prefix, botStore);
  bot.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  const alice = await startClient(prefix);
  const atAlice = collect(alice);
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push((await alice.send(bot.userId, `m${i}`)).id);
  await until(() => atAlice.length === 20);
  expect(atAlice.map((m) => m.content.content)).toEqual(ids.map((_, i) => `echo: m${i}`));
  expect(atAlice.map((m) => m.content.replyTo)).toEqual(ids);
  // Acknowledged rows are deleted in batches shortly after the broker's PUBACK.
  for (let i = 0; i < 100 && (await botStore.listOutbox()).length > 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  expect(await botStore.listOutbox()).toEqual([]);
});

test('conversation data saved by the handler is committed with the message', async () => {
  const prefix = uniqueName('relay');
  const botStore = new MemoryRelayStore();
  const bot = await startClient(prefix, botStore);
  bot.setMessageHandler(async (m, reply, tx) => {
    const count = Number((await tx.loadData(m.conversation.id)) ?? '0') + 1;
    tx.saveData(m.conversation.id, String(count));
    reply(`#${count}`);
  });
  const alice = await startClient(prefix);
  const atAlice = collect(alice);
  for (let i = 0; i < 3; i++) await alice.send(bot.userId, 'count');
  await until(() => atAlice.length === 3);
  expect(atAlice.map((m) => m.content.content)).toEqual(['#1', '#2', '#3']);
  expect(await botStore.getConversationData(alice.userId)).toBe('3');
});

test('an envelope with a made-up access hint does not make other conversations wait on a slow handler', async () => {
  const prefix = uniqueName('relay');
  const victim = await startClient(prefix);
  const slow = await startClient(prefix);
  const other = await startClient(prefix);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let slowEntered = false;
  const delivered: string[] = [];
  victim.setMessageHandler(async (m) => {
    delivered.push(m.content.content);
    if (m.content.content !== 'slow') return;
    slowEntered = true;
    await released; // held until the other conversation got through
  });
  try {
    await slow.send(victim.userId, 'slow');
    await until(() => slowEntered);
    // No PoW, and a hint no session of the victim's has: it could only be a token of a session an
    // earlier message is still setting up. The slow message sets up nothing, so this need not wait.
    const raw = await RawMqtt.connect(relay.broker.url);
    const sentAt = nowSeconds();
    const forged = encodeEnvelope({
      enc: new Uint8Array(randomBytes(32)),
      ciphertext: new Uint8Array(randomBytes(300)),
      powNonce: 0n,
      access: { hint: new Uint8Array(randomBytes(4)), tag: new Uint8Array(randomBytes(16)) },
      sentAt,
    });
    await raw.publish(inboxTopic(prefix, userIdFromHex(victim.userId)), forged);
    await until(() => victim.drops.get('pow') === 1);
    await other.send(victim.userId, 'not stuck');
    await until(() => delivered.includes('not stuck'));
    await raw.close();
  } finally {
    release();
  }
  await until(() => delivered.length === 2);
});
