/**
 * No ratchet generation is ever used twice (PROTOCOL.md §8 "Every application message advances the
 * ratchet"), not even across SIGKILL: a child process streams `stream` parts and `typing` messages to
 * a peer as fast as it can, on a durable store, and is killed at random points and restarted. The
 * receiver never fails to decrypt (a reused generation fails MLS: `mls`), never refuses content, and
 * sees every stream's parts exactly once, in order, with no gap: each part was committed with the
 * state that encrypted it before it left, and the outbox publishes what a kill interrupted.
 * RELAY_CHAOS_CYCLES sets the number of kills (default 6).
 */
import {
  MemoryRelayStore,
  RelayClient,
  type ReceivedMessage,
  type StreamContent,
} from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, onSqlite, sleep, startChild, type Child } from '../support/child.js';
import { postgresForTests } from '../support/postgres.js';
import { until } from '../support/groups.js';

const CYCLES = Number(process.env.RELAY_CHAOS_CYCLES ?? 6);

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

async function chaosRun(env: Record<string, string>): Promise<void> {
  const prefix = uniqueName('content-crash');
  const receiver = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
  });
  const received: ReceivedMessage[] = [];
  receiver.on('message', (m) => received.push(m));
  await receiver.start();
  const childEnv = {
    ...env,
    RELAY_BROKER_URL: broker.url,
    RELAY_PREFIX: prefix,
    RELAY_PEER: receiver.userId,
  };
  let child: Child | undefined;
  try {
    child = await startChild('stream-child.ts', childEnv);
    const streams = () =>
      new Set(received.flatMap((m) => (m.content.type === 'stream' ? [m.content.id] : [])));
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      // Each process gets some messages through before it dies, so every kill lands mid-stream.
      const before = received.length;
      await until(() => received.length >= before + 5, 60_000, `cycle ${cycle}: messages flowing`);
      await sleep(Math.random() * 800);
      await kill(child);
      child = await startChild('stream-child.ts', childEnv);
    }
    const before = received.length;
    await until(() => received.length >= before + 5, 60_000, 'the last process sending');
    await kill(child);
    await sleep(1000); // what the last process committed and published arrives now

    expect(receiver.drops.get('mls')).toBe(0);
    expect(receiver.drops.get('content')).toBe(0);
    expect(receiver.drops.get('content_sender')).toBe(0);
    expect(receiver.drops.get('unknown_session')).toBe(0);
    // One stream per process that got a part out; each one's parts exactly once, in order, no gap.
    expect(streams().size).toBeGreaterThanOrEqual(CYCLES);
    for (const id of streams()) {
      const seqs = received
        .filter((m) => m.content.type === 'stream' && m.content.id === id)
        .map((m) => (m.content as StreamContent).seq);
      expect(seqs).toEqual(seqs.map((_, i) => i));
    }
    const typing = received.filter((m) => m.content.type === 'typing');
    expect(typing.length).toBeGreaterThan(CYCLES);
  } finally {
    if (child) await kill(child);
    await receiver.stop();
  }
}

const pgTest = (await postgresForTests('the Postgres content crash test')) ? test : test.skip;

describe('SIGKILL while streaming and typing: no generation is used twice', () => {
  pgTest(
    `Postgres, ${CYCLES} kill cycles`,
    async () => {
      expect(await onPostgres(chaosRun)).toBe(true);
    },
    300_000,
  );
  test(`SQLite, ${CYCLES} kill cycles`, () => onSqlite(chaosRun), 300_000);
});
