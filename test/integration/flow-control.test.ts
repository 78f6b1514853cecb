/**
 * Cross-conversation flow control (PROTOCOL.md §10, issue 10 hole 10): PUBACKs leave in arrival
 * order (MQTT 5 §4.6) and the broker sends at most `receiveMaximum` (64) unacknowledged messages, so
 * a handler that is slow for one peer must not hold every other conversation's messages back.
 * Through the real broker: a bot whose handler for one peer waits (for the others' answers, at
 * most 8 s) while 120 messages from four other peers arrive; every one of them must be answered
 * before the slow one finishes, and the slow one must still be answered, once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  MemoryRelayStore,
  RelayClient,
  type ReceivedMessage,
  type RelayStore,
} from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { uniqueName } from '../support/broker.js';
import { useRelayClients } from '../support/relay-clients.js';
import { until } from '../support/groups.js';

const OTHER_PEERS = 4;
const MESSAGES_PER_PEER = 30;
const OTHERS_TOTAL = OTHER_PEERS * MESSAGES_PER_PEER;
const SLOW_HANDLER_MAX_MS = 8000;

const relay = useRelayClients();
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function startClient(prefix: string, store: RelayStore = new MemoryRelayStore()): Promise<RelayClient> {
  const client = await relay.create({
    store,
    topicPrefix: prefix,
    powBits: 8,
  });
  await client.start();
  return client;
}

function collect(client: RelayClient): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  return got;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The bot's store: in memory, or SQLite in a temporary directory (parking writes a real table). */
async function botStoreOf(
  kind: 'memory' | 'sqlite',
): Promise<{ store: RelayStore; cleanup(): Promise<void> }> {
  if (kind === 'memory') return { store: new MemoryRelayStore(), cleanup: async () => undefined };
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-flow-'));
  const store = new TypeOrmRelayStore(
    await createRelayDataSource({ sqlitePath: path.join(dir, 'relay.sqlite') }),
  );
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test.each(['memory', 'sqlite'] as const)(
  '%s store: a slow handler for one peer does not hold back 120 messages from other peers',
  async (kind) => {
    const prefix = uniqueName('flow');
    const { store: botStore, cleanup } = await botStoreOf(kind);
    cleanups.push(cleanup);
    const bot = await startClient(prefix, botStore);
    const slowPeer = await startClient(prefix);
    const others = await Promise.all(Array.from({ length: OTHER_PEERS }, () => startClient(prefix)));
    const slowReplies = collect(slowPeer);
    const otherReplies = others.map(collect);
    const answered = () =>
      otherReplies.reduce((n, r) => n + r.filter((m) => m.content.content !== 'hi').length, 0);

    let slowStarted = false;
    let slowFinished = false;
    let answeredWhenSlowFinished = -1;
    let releaseSlow!: () => void;
    const othersDone = new Promise<void>((r) => (releaseSlow = r));
    bot.setMessageHandler(async (m, reply) => {
      if (m.content.content === 'slow') {
        slowStarted = true;
        // Waits for the other peers' answers, or at most 8 s (the old code's fate: they wait for it).
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([othersDone, new Promise((r) => (timer = setTimeout(r, SLOW_HANDLER_MAX_MS)))]);
        clearTimeout(timer);
        answeredWhenSlowFinished = answered();
        slowFinished = true;
        reply('slow done');
        return;
      }
      reply(m.content.content === 'hi' ? 'hi' : `echo: ${m.content.content}`);
    });

    // Sessions first, so the flood below uses access tokens and the bot's handler alone is slow.
    for (const c of [slowPeer, ...others]) await c.send(bot.userId, 'hi');
    await until(
      () => slowReplies.length === 1 && otherReplies.every((r) => r.length === 1),
      30_000,
      'greetings',
    );

    await slowPeer.send(bot.userId, 'slow');
    await until(() => slowStarted, 10_000, 'the slow handler to start');
    const sends = others.map(async (c, p) => {
      for (let i = 0; i < MESSAGES_PER_PEER; i++) await c.send(bot.userId, `p${p}:${i}`);
    });
    await Promise.all(sends);
    await until(() => answered() === OTHERS_TOTAL || slowFinished, 30_000, 'the other peers or the slow one');
    releaseSlow();
    await until(() => slowReplies.length === 2, 30_000, 'the slow reply');
    await sleep(300); // a duplicate would arrive now
    await until(
      async () => (await botStore.listParkedInbound()).length === 0,
      10_000,
      'the parked rows to go',
    );

    // The old code: ~63 answered (receive maximum 64, the slow head holds every later PUBACK).
    expect(answeredWhenSlowFinished).toBe(OTHERS_TOTAL);
    expect(slowReplies.map((m) => m.content.content)).toEqual(['hi', 'slow done']);
    for (const [p, replies] of otherReplies.entries()) {
      const texts = replies.map((m) => m.content.content).filter((t) => t !== 'hi');
      expect(texts.sort()).toEqual(
        Array.from({ length: MESSAGES_PER_PEER }, (_, i) => `echo: p${p}:${i}`).sort(),
      );
    }
  },
  90_000,
);
