/**
 * Two replicas' schedulers on one bot's jobs (issue #13): each gated by its own LeaseKeeper on the
 * real Postgres lease store, so a due job is sent once with both polling, and after the owner stops
 * (releasing its lease) the other one sends what falls due next.
 */
import { pino } from 'pino';
import { JobScheduler, MemoryDataStore, encodeJob, jobKey, type JobSend } from '../../index.js';
import { DUTY, LeaseKeeper } from '../../framework/relay/index.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from '../store/helpers.js';

const pgUp = await postgresAvailable('the scheduler replica tests');
const ALICE = 'a1'.repeat(16);
const log = pino({ level: 'silent' });

async function until(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

(pgUp ? describe : describe.skip)('JobScheduler replicas sharing a Postgres lease store', () => {
  let schema: string;
  let drop: () => Promise<void>;
  const opened: OpenStore[] = [];
  const keepers: LeaseKeeper[] = [];
  const schedulers: JobScheduler[] = [];
  const schedulerOf = new Map<LeaseKeeper, JobScheduler>();

  beforeEach(async () => {
    ({ schema, drop } = await freshPgSchema());
  });
  afterEach(async () => {
    for (const s of schedulers.splice(0)) await s.stop();
    for (const k of keepers.splice(0)) await k.stop();
    for (const o of opened.splice(0)) await o.cleanup();
    await drop();
  });

  test('a due job is sent once with both replicas polling; the survivor takes over', async () => {
    // The jobs both replicas read: one store, as their shared Postgres is for a real bot.
    const data = new MemoryDataStore();
    const sent: Array<{ by: string; text: string }> = [];
    const replica = async (replicaId: string): Promise<LeaseKeeper> => {
      const db = await openPgIn(schema);
      opened.push(db);
      const keeper = new LeaseKeeper({
        store: db.store.leases,
        replica: { replicaId },
        ttlMs: 1500,
        renewEveryMs: 250,
      });
      keeper.on('error', () => undefined);
      keeper.want(DUTY.scheduler);
      keepers.push(keeper);
      // Stands in for RelayClient.send: the tombstone commits with the message, after a delay
      // that gives the other replica's passes every chance to see the job still due.
      const send: JobSend = async (_to, text, options) => {
        sent.push({ by: replicaId, text });
        await new Promise((r) => setTimeout(r, 5));
        const tx = data.transaction();
        for (const d of options.data) tx.saveData(d.conversationId, d.json);
      };
      const scheduler = new JobScheduler({
        prefix: 'jobs:b:',
        source: data,
        send,
        now: () => Date.now(),
        pollMs: 10,
        log,
        owns: () => keeper.owns(DUTY.scheduler),
      });
      schedulers.push(scheduler);
      schedulerOf.set(keeper, scheduler);
      return keeper;
    };
    const add = (text: string): void =>
      data.transaction().saveData(jobKey('b', Date.now()), encodeJob({ to: ALICE, text, dueAt: Date.now() }));

    const [a, b] = await Promise.all([replica('bots/0'), replica('bots/1')]);
    await Promise.all([a.start(), b.start()]);
    const owner = a.owns(DUTY.scheduler) ? a : b;
    const other = owner === a ? b : a;
    expect([a.owns(DUTY.scheduler), b.owns(DUTY.scheduler)].filter(Boolean)).toHaveLength(1);
    schedulers.forEach((s) => s.start());

    const first = Array.from({ length: 30 }, (_, i) => `first ${i}`);
    for (const text of first) add(text);
    await until('the first jobs', () => sent.length >= first.length);
    await new Promise((r) => setTimeout(r, 300)); // a second send of any job would come now
    expect(sent.map((s) => s.text).sort()).toEqual([...first].sort());
    expect(new Set(sent.map((s) => s.by))).toEqual(new Set([owner.holder]));

    // The owner shuts down gracefully: its lease is released and the other replica takes it.
    await schedulerOf.get(owner)!.stop();
    await owner.stop();
    await other.renewNow();
    expect(other.owns(DUTY.scheduler)).toBe(true);
    const second = Array.from({ length: 10 }, (_, i) => `second ${i}`);
    for (const text of second) add(text);
    await until('the second jobs', () => sent.length >= first.length + second.length);
    await new Promise((r) => setTimeout(r, 300));
    const later = sent.slice(first.length);
    expect(later.map((s) => s.text).sort()).toEqual([...second].sort());
    expect(new Set(later.map((s) => s.by))).toEqual(new Set([other.holder]));
  }, 30_000);

  test('without the lease gate two schedulers send one job twice (what the gate prevents)', async () => {
    const data = new MemoryDataStore();
    const sent: string[] = [];
    const send: JobSend = async (_to, text, options) => {
      sent.push(text);
      await new Promise((r) => setTimeout(r, 20));
      const tx = data.transaction();
      for (const d of options.data) tx.saveData(d.conversationId, d.json);
    };
    for (let i = 0; i < 2; i++)
      schedulers.push(
        new JobScheduler({ prefix: 'jobs:b:', source: data, send, now: () => Date.now(), pollMs: 5, log }),
      );
    data.transaction().saveData(jobKey('b', Date.now()), encodeJob({ to: ALICE, text: 'once?', dueAt: 0 }));
    await Promise.all(schedulers.map((s) => s.tick()));
    expect(sent).toEqual(['once?', 'once?']);
  });
});
