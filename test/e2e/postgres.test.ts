/**
 * The harness on Postgres (a fresh schema per run): sessions, rate-limit buckets and scheduled
 * jobs commit with their messages there too. Skipped, with a note, when Postgres does not answer.
 */
import { NotesBot } from '../../bots/notes/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { rateLimit } from '../../plugins/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../support/postgres.js';

const pgUp = await postgresAnswers();
if (!pgUp) console.warn(`skipping the Postgres harness tests: nothing answers at ${PG_URL}`);

async function ask(p: TestPeer, text: string): Promise<string> {
  await p.send(text);
  return (await p.nextReply()).content;
}

(pgUp ? describe : describe.skip)('harness on Postgres', () => {
  let broker: TestBroker;
  let h: TestHarness;
  const schema = uniqueName('bot_e2e').replace(/-/g, '_');
  let now = 1_900_000_000_000;

  beforeAll(async () => {
    broker = await getTestBroker();
    await createPgSchema(schema);
    h = await createTestHarness(new NotesBot(), {
      brokerUrl: broker.url,
      databaseUrl: PG_URL,
      schema,
      runtimeOptions: { clock: () => now, scheduler: { pollMs: 50 } },
      setup: (rt) => rt.use(rateLimit({ capacity: 3, refillPerSecond: 1, clock: () => now })),
    });
  });

  afterAll(async () => {
    await h?.close();
    await broker?.close();
    if (pgUp) await dropPgSchema(schema);
  });

  test('notes, a rate limit and a reminder survive restarts', async () => {
    const alice = await h.peer();
    expect(await ask(alice, '/note add on postgres')).toBe('noted (1 note)');
    expect(await ask(alice, '/remind 1 check the database')).toBe('ok, I will remind you in 1 minute');
    expect(await ask(alice, '/note list')).toBe('1. on postgres');
    expect(await ask(alice, '/note list')).toBe('slow down: try again in 1 s');
    await h.stop();
    now += 61_000;
    await h.start();
    expect((await alice.nextReply()).content).toBe('reminder: check the database');
    expect(await ask(alice, '/note list')).toBe('1. on postgres');
    const jobs = await h.bot.store.listConversationData('jobs:notes:');
    expect(jobs).toEqual([]);
  });
});
