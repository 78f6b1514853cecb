/**
 * Session growth (PROTOCOL.md §10): a 1:1 session in which the peer never sent an application
 * message expires after 24 hours, and sessions are loaded on demand, never all at start-up.
 * Through the real broker with the public API; time moves on an injected clock.
 */
import { randomBytes } from 'node:crypto';
import {
  ManualClock,
  MemoryRelayStore,
  RelayClient,
  type ReceivedMessage,
  type RelayStore,
  type DirectConversationRecord,
  type SessionRecord,
  groupIdHexOf,
} from '../../framework/relay/index.js';
import type { GroupConversationRecord } from '../../framework/relay/store.js';
import { uniqueName } from '../support/broker.js';
import { useRelayClients } from '../support/relay-clients.js';
import { until } from '../support/groups.js';

const relay = useRelayClients();
const { clients } = relay;

async function startClient(
  prefix: string,
  store: RelayStore = new MemoryRelayStore(),
  clock?: ManualClock,
): Promise<RelayClient> {
  const client = await relay.create({
    store,
    topicPrefix: prefix,
    powBits: 8,
    ...(clock ? { clock } : {}),
  });
  await client.start();
  return client;
}

async function stopClient(client: RelayClient): Promise<void> {
  clients.splice(clients.indexOf(client), 1);
  await client.stop();
}

function collect(client: RelayClient): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  return got;
}

const HOUR = 3600;

test('a session the peer never wrote in expires after 24 hours; used ones stay', async () => {
  const prefix = uniqueName('expiry');
  const clock = new ManualClock(Math.floor(Date.now() / 1000));
  const botStore = new MemoryRelayStore();
  let bot = await startClient(prefix, botStore, clock);
  bot.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  const alice = await startClient(prefix, new MemoryRelayStore(), clock);
  const aliceGot = collect(alice);
  // Carol publishes her bundle (retained) and goes away: the bot's session with her stays unused.
  const carol = await startClient(prefix, new MemoryRelayStore(), clock);
  await stopClient(carol);

  await alice.send(bot.userId, 'hi');
  await until(() => aliceGot.length === 1, 30_000, 'the echo');
  await bot.send(carol.userId, 'hello, anyone there?');
  expect(await bot.sessionWith(carol.userId)).toBeDefined();

  const restartBot = async () => {
    await stopClient(bot);
    bot = await startClient(prefix, botStore, clock); // start-up runs housekeeping
  };
  clock.advance(23 * HOUR);
  await restartBot();
  expect(await bot.sessionWith(carol.userId)).toBeDefined();
  expect(await bot.sessionWith(alice.userId)).toBeDefined();

  clock.advance(2 * HOUR);
  await restartBot();
  // The old code: carol's session is still there.
  expect(await bot.sessionWith(carol.userId)).toBeUndefined();
  expect(await bot.sessionWith(alice.userId)).toBeDefined();
  expect(await bot.peers()).toEqual([alice.userId]);
}, 60_000);

/** A store that sums the bytes of every MLS state it hands out (sessions and groups). */
function stateReadCounter(store: RelayStore): { store: RelayStore; bytes: () => number } {
  let total = 0;
  const count = (value: unknown, depth = 0): void => {
    if (depth > 3 || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach((v) => count(v, depth + 1));
    const state = (value as { state?: unknown }).state;
    if (state instanceof Uint8Array) total += state.length;
    for (const v of Object.values(value)) if (typeof v === 'object') count(v, depth + 1);
  };
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const result = fn.apply(target, args);
        if (result instanceof Promise) return result.then((r: unknown) => (count(r), r));
        return result;
      };
    },
  });
  return { store: proxy, bytes: () => total };
}

test('start-up with many sessions and groups stored reads no MLS state; the one used is loaded on demand', async () => {
  const prefix = uniqueName('lazy');
  const botStore = new MemoryRelayStore();
  let bot = await startClient(prefix, botStore);
  bot.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  const alice = await startClient(prefix);
  const aliceGot = collect(alice);
  await alice.send(bot.userId, 'hi');
  await until(() => aliceGot.length === 1, 30_000, 'the first echo');

  // 2,000 more sessions whose state would not even decode: start-up (housekeeping included) must
  // not touch them.
  const now = Math.floor(Date.now() / 1000);
  const fakes: DirectConversationRecord[] = Array.from({ length: 2000 }, () => ({
    kind: 'direct',
    groupId: groupIdHexOf(randomBytes(32)),
    peerId: randomBytes(16).toString('hex'),
    state: randomBytes(4096),
    epoch: 1n,
    initiatedUnconfirmed: false,
    inboundAccess: { current: randomBytes(32) },
    messagesSinceCommit: 0,
    unconfirmedOutgoing: [],
    updatedAt: now as SessionRecord['updatedAt'],
    version: 0,
  }));
  await botStore.commit({ conversations: fakes });
  // And 200 groups in the same condition, with bookkeeping that asks for nothing.
  const meta = JSON.stringify({
    messagesSinceCommit: 0,
    ownMessagesSinceUpdate: 0,
    lastCommitAt: now,
    lastUpdateAt: now,
    intents: [],
    rejoinsServed: {},
  });
  const groups: GroupConversationRecord[] = Array.from({ length: 200 }, () => ({
    kind: 'group',
    groupId: groupIdHexOf(randomBytes(32)),
    topicId: randomBytes(16).toString('hex'),
    state: randomBytes(4096),
    epoch: 1n,
    meta,
    updatedAt: now as GroupConversationRecord['updatedAt'],
    version: 0,
  }));
  await botStore.commit({ conversations: groups });

  await stopClient(bot);
  const counted = stateReadCounter(botStore);
  bot = await startClient(prefix, counted.store);
  bot.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  // The old code: 2000 × 4096 bytes and more (every session and group row, state included).
  expect(counted.bytes()).toBe(0);

  await alice.send(bot.userId, 'again');
  await until(() => aliceGot.length === 2, 30_000, 'the second echo');
  expect(aliceGot[1]!.content.content).toBe('echo: again');
  // Only alice's session was read, not the 2,000 others.
  expect(counted.bytes()).toBeGreaterThan(0);
  expect(counted.bytes()).toBeLessThan(4096 * 2);
}, 60_000);
