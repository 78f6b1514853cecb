/**
 * Group commit across conversations on Postgres (framework/store/commit-batch.ts, issue #12):
 * commits of different conversations made while one is being written share one statement, and
 * each still applies whole or not at all, with its own outcome.
 */
import pg from 'pg';
import { StaleStateError, StorageError } from '../../framework/relay/errors.js';
import type { InboundCommit, RelayStore } from '../../framework/relay/index.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from './helpers.js';
import { at, direct, groupId, outbox, session } from './store-suite.js';

const pgUp = await postgresAvailable('the commit batching tests');

/** Counts the statements sent while `run` runs (every pg client in this process). */
async function statements(run: () => Promise<unknown>): Promise<number> {
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const original = proto.query;
  let n = 0;
  proto.query = function (this: unknown, ...args: unknown[]) {
    n++;
    return original.apply(this, args);
  };
  try {
    await run();
  } finally {
    proto.query = original;
  }
  return n;
}

(pgUp ? describe : describe.skip)('Postgres commits of different conversations, batched', () => {
  let drop: () => Promise<void>;
  let opened: OpenStore;
  let store: RelayStore;

  beforeEach(async () => {
    const fresh = await freshPgSchema();
    drop = fresh.drop;
    opened = await openPgIn(fresh.schema);
    store = opened.store;
    await store.listOutbox();
  });
  afterEach(async () => {
    await opened.cleanup();
    await drop();
  });

  const names = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`);

  /** Stores the sessions, then returns an inbound-message commit (one reply) for each. */
  async function messageCommits(sessions: string[]): Promise<InboundCommit[]> {
    await store.commit({ conversations: sessions.map((s) => direct(session(s))) });
    return sessions.map((s) => ({
      conversations: [direct(session(s, { version: 1, messagesSinceCommit: 1 }))],
      outbox: [outbox(`o-${s}`)],
      processed: { groupId: groupId(s), digest: `d-${s}`, at: at() },
      envelope: { digest: `e-${s}`, expiresAt: at(100) },
      messageSenders: [{ groupId: groupId(s), messageId: `m-${s}`, sender: 'peer', at: at() }],
    }));
  }

  async function applied(s: string): Promise<boolean[]> {
    return [
      (await store.getSession(groupId(s)))?.version === 2,
      (await store.listOutbox()).some((o) => o.id === `o-${s}`),
      await store.hasProcessed(groupId(s), `d-${s}`),
      await store.hasEnvelope(`e-${s}`, at()),
      (await store.messageSenders(groupId(s), [`m-${s}`])).get(`m-${s}`) === 'peer',
    ];
  }

  test('20 concurrent message commits land whole, in a few statements rather than 20', async () => {
    const commits = await messageCommits(names(20));
    const n = await statements(() => Promise.all(commits.map((c) => store.commit(c))));
    // The first goes alone; those that arrived while it was written go together.
    expect(n).toBeLessThanOrEqual(4);
    for (const s of names(20)) expect(await applied(s)).toEqual([true, true, true, true, true]);
  });

  test('a stale commit among them fails alone with StaleStateError and writes nothing', async () => {
    const commits = await messageCommits(names(10));
    const stale = { ...commits[4]!, conversations: [direct(session('s4', { version: 7 }))] };
    const results = await Promise.allSettled(commits.map((c, i) => store.commit(i === 4 ? stale : c)));
    results.forEach((r, i) => expect(r.status).toBe(i === 4 ? 'rejected' : 'fulfilled'));
    expect((results[4] as PromiseRejectedResult).reason).toBeInstanceOf(StaleStateError);
    for (const s of names(10))
      expect(await applied(s)).toEqual(
        s === 's4' ? [false, false, false, false, false] : [true, true, true, true, true],
      );
    expect((await store.getSession(groupId('s4')))?.version).toBe(1);
  });

  test('a statement that fails as a whole: each commit is written again alone, with its own outcome', async () => {
    const commits = await messageCommits(names(8));
    // An outbox id that is taken already: that commit's insert fails, and with it the statement.
    await store.commit({ outbox: [outbox('taken')] });
    const clash = { ...commits[5]!, outbox: [outbox('taken')] };
    const results = await Promise.allSettled(commits.map((c, i) => store.commit(i === 5 ? clash : c)));
    results.forEach((r, i) => expect(r.status).toBe(i === 5 ? 'rejected' : 'fulfilled'));
    expect((results[5] as PromiseRejectedResult).reason).toBeInstanceOf(StorageError);
    for (const s of names(8)) expect((await applied(s)).slice(0, 1)).toEqual([s !== 's5']);
    expect(await store.hasEnvelope('e-s5', at())).toBe(false);
  });

  test('two commits of one conversation never share a statement: the second sees the first', async () => {
    const [first] = await messageCommits(['s0']);
    const second = { ...first!, conversations: [direct(session('s0', { version: 2 }))], outbox: [] };
    const [a, b] = await Promise.allSettled([store.commit(first!), store.commit(second)]);
    expect([a.status, b.status]).toEqual(['fulfilled', 'fulfilled']);
    expect((await store.getSession(groupId('s0')))?.version).toBe(3);
  });
});
