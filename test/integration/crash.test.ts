/**
 * Crash safety (ARCHITECTURE.md "One inbound message, end to end"): an echo process on a durable
 * store is killed with SIGKILL at random points while a peer sends numbered messages. After every
 * restart it resumes; at the end the peer holds exactly one decryptable reply per message.
 * RELAY_CHAOS_CYCLES sets the number of kills (default 10; `npm run chaos -- --cycles N`).
 */
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, onSqlite, sleep, startChild, storeFromEnv } from '../support/child.js';
import { postgresForTests } from '../support/postgres.js';
import { until } from '../support/groups.js';

const CYCLES = Number(process.env.RELAY_CHAOS_CYCLES ?? 10);
const MESSAGES = 200;

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

/** After the run: one session, nothing left in the outbox, no half-written rows. */
async function expectConsistentStore(env: Record<string, string>): Promise<void> {
  const store = await storeFromEnv(env);
  try {
    expect(await store.listOutbox()).toEqual([]);
    const sessions = await store.listSessions();
    expect(sessions).toHaveLength(1);
    expect(sessions[0]!.version).toBeGreaterThan(MESSAGES / 2);
    expect(await store.loadIdentity()).toBeDefined();
  } finally {
    await store.close();
  }
}

async function chaosRun(env: Record<string, string>): Promise<void> {
  const prefix = uniqueName('crash');
  const childEnv = { ...env, RELAY_BROKER_URL: broker.url, RELAY_PREFIX: prefix };
  let child = await startChild('echo-child.ts', childEnv);
  const botId = child.userId;
  const peer = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
  });
  const replies: ReceivedMessage[] = [];
  peer.on('message', (m) => replies.push(m));
  await peer.start();
  const ids: string[] = [];
  // Sending is released cycle by cycle, so every kill lands while messages of the stream are still
  // in flight however long the restarts take on a loaded machine (a fixed pace once let the whole
  // stream finish before the fifth kill).
  const perCycle = MESSAGES / CYCLES;
  const paceMs = 1000 / perCycle;
  let released = 0;
  let sending = true;
  const sender = (async () => {
    for (let i = 0; i < MESSAGES; i++) {
      await until(() => i < released, 300_000, `kill cycle releasing message ${i}`);
      ids.push((await peer.send(botId, `n:${i}`)).id);
      await sleep(Math.random() * 2 * paceMs);
    }
    sending = false;
  })();
  let killsMidRun = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    released = Math.round((cycle + 1) * perCycle);
    await sleep(150 + Math.random() * 1500);
    if (replies.length < MESSAGES) killsMidRun++;
    await kill(child);
    child = await startChild('echo-child.ts', childEnv);
    expect(child.userId).toBe(botId);
  }
  await sender;
  expect(sending).toBe(false);
  try {
    await until(() => replies.length >= MESSAGES, 120_000, 'every reply');
    await sleep(500); // a duplicate would arrive now
    const texts = replies.map((r) => r.content.content);
    expect(texts.length).toBe(MESSAGES);
    expect(new Set(texts).size).toBe(MESSAGES);
    expect(texts.sort()).toEqual(ids.map((_, i) => `echo: n:${i}`).sort());
    expect(replies.map((r) => r.content.replyTo).sort()).toEqual([...ids].sort());
    expect(peer.drops.get('mls')).toBe(0);
    expect(peer.drops.get('content')).toBe(0);
    expect(killsMidRun).toBeGreaterThanOrEqual(Math.ceil(CYCLES / 2));
    await kill(child);
    await expectConsistentStore(env);
  } finally {
    await kill(child);
    await peer.stop();
  }
}

const pgTest = (await postgresForTests('the Postgres crash test')) ? test : test.skip;

describe('SIGKILL at random points: exactly one reply per message', () => {
  test(`SQLite, ${CYCLES} kill cycles`, () => onSqlite(chaosRun), 300_000);

  pgTest(
    `Postgres, ${CYCLES} kill cycles`,
    async () => {
      expect(await onPostgres(chaosRun)).toBe(true);
    },
    300_000,
  );
});
