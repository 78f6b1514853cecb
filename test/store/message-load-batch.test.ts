/**
 * Message loads coalesced across conversations (framework/store/message-load-batch.ts, issue #12):
 * loads made while one is in flight share one statement, and each caller gets what a load on its
 * own returns (missing rows, processed hits, envelope hits, the peer), on SQLite and Postgres; an
 * error reaches only the callers whose own load fails.
 */
import type { DataSource } from 'typeorm';
import type { ConversationMessageLoad, EnvelopeLookup } from '../../framework/relay/store.js';
import type { Row } from '../../framework/store/mapping.js';
import { MessageLoadBatcher, type MessageLoadQuery } from '../../framework/store/message-load-batch.js';
import type { Sql } from '../../framework/store/sql.js';
import type { SqlRunner } from '../../framework/store/sql-runner.js';
import type { TypeOrmRelayStore } from '../../framework/store/index.js';
import {
  freshPgSchema,
  openPgIn,
  openSqliteStore,
  postgresAvailable,
  tempDir,
  type OpenStore,
} from './helpers.js';
import { at, direct, group, grouped, groupId, peer, session } from './store-suite.js';

const pgUp = await postgresAvailable('the Postgres message-load coalescing tests');
const dir = tempDir();
afterAll(() => dir.remove());

/** Counts the connections taken (one per statement outside a transaction) while `run` runs. */
async function counted<T>(ds: DataSource, run: () => Promise<T>): Promise<{ statements: number; result: T }> {
  const original = ds.createQueryRunner.bind(ds);
  let statements = 0;
  ds.createQueryRunner = (...args: Parameters<DataSource['createQueryRunner']>) => {
    statements++;
    return original(...args);
  };
  try {
    const result = await run();
    return { statements, result };
  } finally {
    ds.createQueryRunner = original;
  }
}

type Load = [string, string, EnvelopeLookup?];

/** Every case a load can meet, a conversation loaded twice included. */
const LOADS: Load[] = [
  [groupId('s1'), 'd1', { digest: 'e1', now: at() }], // processed, envelope seen, peer stored
  [groupId('s1'), 'd2', { digest: 'e-old', now: at() }], // neither: the envelope expired
  [groupId('s2'), 'd1'], // a session whose peer is not stored
  [groupId('g1'), 'dg'], // a group, processed
  [groupId('zz'), 'd1', { digest: 'e1', now: at() }], // no such conversation
  [groupId('g1'), 'dx', { digest: 'e1', now: at(200) }], // the envelope expired by then
  [groupId('s1'), 'd1'], // the same conversation again, no envelope check
];

const backends: Array<[string, boolean, () => Promise<OpenStore & { drop?: () => Promise<void> }>]> = [
  ['SQLite', true, () => openSqliteStore(dir.path)],
  [
    'Postgres',
    pgUp,
    async () => {
      const fresh = await freshPgSchema();
      return { ...(await openPgIn(fresh.schema)), drop: fresh.drop };
    },
  ],
];

describe.each(backends)('message loads coalesced on %s', (_name, up, open) => {
  let opened: OpenStore & { drop?: () => Promise<void> };
  let store: TypeOrmRelayStore;

  beforeEach(async () => {
    if (!up) return;
    opened = await open();
    store = opened.store;
    await store.commit({
      conversations: [direct(session('s1'))],
      peers: [peer('peer-s1')],
      processed: { groupId: groupId('s1'), digest: 'd1', at: at() },
      envelope: { digest: 'e1', expiresAt: at(100) },
    });
    await store.commit({ conversations: [direct(session('s2'))] });
    await store.commit({
      conversations: [grouped(group('g1'))],
      processed: { groupId: groupId('g1'), digest: 'dg', at: at() },
      envelope: { digest: 'e-old', expiresAt: at(-10) },
    });
  });
  afterEach(async () => {
    if (!up) return;
    await opened.cleanup();
    await opened.drop?.();
  });

  const load = ([id, digest, envelope]: Load) => store.loadConversationForMessage(id, digest, envelope);

  (up ? test : test.skip)(
    'concurrent loads: one statement after the first, the same results as one by one',
    async () => {
      const alone = await counted(opened.ds, async () => {
        const out: Array<ConversationMessageLoad | undefined> = [];
        for (const l of LOADS) out.push(await load(l));
        return out;
      });
      expect(alone.statements).toBe(LOADS.length);
      // What one-by-one loads say (and what the store said before coalescing).
      expect(alone.result.map((r) => r && [r.processed, r.envelopeSeen, r.peer?.userId])).toEqual([
        [true, true, 'peer-s1'],
        [false, false, 'peer-s1'],
        [false, undefined, undefined],
        [true, undefined, undefined],
        undefined,
        [false, false, undefined],
        [true, undefined, 'peer-s1'],
      ]);

      const together = await counted(opened.ds, () => Promise.all(LOADS.map(load)));
      // The first goes at once, the others wait for it and go together.
      expect(together.statements).toBe(2);
      expect(together.result).toEqual(alone.result);
    },
  );

  (up ? test : test.skip)('a burst larger than a batch: every load answered, in few statements', async () => {
    const burst = Array.from({ length: 150 }, (_, i) => LOADS[i % LOADS.length]!);
    const expected: Array<ConversationMessageLoad | undefined> = [];
    for (const l of LOADS) expected.push(await load(l));
    const { statements, result } = await counted(opened.ds, () => Promise.all(burst.map(load)));
    expect(result).toEqual(burst.map((_, i) => expected[i % LOADS.length]));
    // 1 alone, then batches of at most 64.
    expect(statements).toBe(4);
  });

  (up ? test : test.skip)(
    'held versions: a batch skips the state exactly where the row is at the held one',
    async () => {
      // s1, s2 and g1 are all at version 1.
      const HELD: Array<[string, string, number | undefined]> = [
        [groupId('s1'), 'd1', 1], // skipped
        [groupId('s2'), 'd1', 0], // another version: read
        [groupId('g1'), 'dg', 1], // skipped
        [groupId('g1'), 'dg', undefined], // nothing held: read
        [groupId('s1'), 'd2', 2], // another version: read
        [groupId('zz'), 'd1', 1], // no such conversation
      ];
      const one = ([id, digest, held]: [string, string, number | undefined]) =>
        store.loadConversationForMessage(id, digest, undefined, held);
      const alone: Array<ConversationMessageLoad | undefined> = [];
      for (const h of HELD) alone.push(await one(h));
      expect(alone.map((r) => r && [r.stateSkipped, r.conversation.state.length])).toEqual([
        [true, 0],
        [undefined, 200],
        [true, 0],
        [undefined, 300],
        [undefined, 200],
        undefined,
      ]);
      const together = await counted(opened.ds, () => Promise.all(HELD.map(one)));
      expect(together.statements).toBe(2);
      expect(together.result).toEqual(alone);
    },
  );
});

/** Sender-index reads of every kind: hits, misses, an id of another conversation, duplicates. */
const SENDER_READS: Array<[string, string[]]> = [
  [groupId('g1'), ['m1', 'm2']],
  [groupId('s1'), ['m1', 'm2']],
  [groupId('g1'), ['m3']],
  [groupId('zz'), ['m1']],
  [groupId('g1'), ['m2', 'm2']],
  [groupId('g1'), Array.from({ length: 20 }, (_, i) => `m${i}`)], // too many ids to share: alone
];

describe.each(backends)('sender-index reads coalesced on %s', (_name, up, open) => {
  let opened: OpenStore & { drop?: () => Promise<void> };

  beforeEach(async () => {
    if (!up) return;
    opened = await open();
    await opened.store.commit({
      conversations: [direct(session('s1')), grouped(group('g1'))],
      messageSenders: [
        { groupId: groupId('g1'), messageId: 'm1', sender: 'alice', at: at() },
        { groupId: groupId('g1'), messageId: 'm2', sender: 'bob', at: at() },
        { groupId: groupId('s1'), messageId: 'm1', sender: 'peer-s1', at: at() },
      ],
    });
  });
  afterEach(async () => {
    if (!up) return;
    await opened.cleanup();
    await opened.drop?.();
  });

  const sorted = (m: Map<string, string>) => [...m].sort();

  (up ? test : test.skip)(
    'concurrent reads: the same entries as one by one, in fewer statements',
    async () => {
      const read = ([id, ids]: [string, string[]]) => opened.store.messageSenders(id, ids);
      const alone = await counted(opened.ds, async () => {
        const out: Array<Map<string, string>> = [];
        for (const r of SENDER_READS) out.push(await read(r));
        return out;
      });
      expect(alone.statements).toBe(SENDER_READS.length);
      expect(alone.result.map(sorted)).toEqual([
        [
          ['m1', 'alice'],
          ['m2', 'bob'],
        ],
        [['m1', 'peer-s1']],
        [],
        [],
        [['m2', 'bob']],
        [
          ['m1', 'alice'],
          ['m2', 'bob'],
        ],
      ]);
      const together = await counted(opened.ds, () => Promise.all(SENDER_READS.map(read)));
      // The first alone, the 20-id read alone, the other four together.
      expect(together.statements).toBe(3);
      expect(together.result.map(sorted)).toEqual(alone.result.map(sorted));
    },
  );
});

(pgUp ? describe : describe.skip)('a coalesced load that Postgres refuses', () => {
  let opened: OpenStore & { drop(): Promise<void> };

  beforeEach(async () => {
    const fresh = await freshPgSchema();
    opened = { ...(await openPgIn(fresh.schema)), drop: fresh.drop };
    await opened.store.commit({
      conversations: [direct(session('s1'))],
      processed: { groupId: groupId('s1'), digest: 'd1', at: at() },
    });
  });
  afterEach(async () => {
    await opened.cleanup();
    await opened.drop();
  });

  test('fails only its own caller; the others in its batch get their rows', async () => {
    const { store } = opened;
    const bad = { digest: 'e1', now: 'not a number' as unknown as EnvelopeLookup['now'] };
    const results = await Promise.allSettled([
      store.loadConversationForMessage(groupId('s1'), 'd0'),
      store.loadConversationForMessage(groupId('s1'), 'd1'),
      store.loadConversationForMessage(groupId('s1'), 'd2', bad),
      store.loadConversationForMessage(groupId('zz'), 'd1'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(results[1]).toMatchObject({ value: { processed: true } });
    expect(results[3]).toEqual({ status: 'fulfilled', value: undefined });
  });
});

describe('MessageLoadBatcher errors', () => {
  /** A runner whose batch statements fail and whose single loads fail for group id 'bad'. */
  function failingRunner(): { runner: SqlRunner; statements: string[]; release(): void } {
    const statements: string[] = [];
    let release: () => void = () => undefined;
    const first = new Promise<void>((r) => (release = r));
    const sql: Sql = {
      backend: 'postgres',
      rows: async (text, params = []) => {
        statements.push(text.trimStart().slice(0, 4));
        if (statements.length === 1) await first;
        if (text.trimStart().startsWith('WITH')) throw new Error('batch refused');
        // A single load's params: held version twice, then the group id.
        if (params[2] === 'bad') throw new Error('bad row');
        return [{ group_id: params[2] } as Row];
      },
      run: async () => 0,
    };
    const runner = { once: <T>(fn: (s: Sql) => Promise<T>) => fn(sql) } as unknown as SqlRunner;
    return { runner, statements, release };
  }

  const q = (groupId: string): MessageLoadQuery => ({
    groupId,
    digest: 'd',
    envelopeDigest: null,
    now: 0,
    held: null,
  });

  test('a failed batch is retried load by load; each caller gets its own outcome', async () => {
    const { runner, statements, release } = failingRunner();
    const batcher = new MessageLoadBatcher(runner);
    const loads = [batcher.load(q('a')), batcher.load(q('b')), batcher.load(q('bad')), batcher.load(q('c'))];
    release();
    const results = await Promise.allSettled(loads);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value?.group_id : 'failed'))).toEqual([
      'a',
      'b',
      'failed',
      'c',
    ]);
    expect((results[2] as PromiseRejectedResult).reason).toEqual(new Error('bad row'));
    // 'a' alone, the batch of three (refused), then each of the three alone.
    expect(statements).toEqual(['SELE', 'WITH', 'SELE', 'SELE', 'SELE']);
  });
});
