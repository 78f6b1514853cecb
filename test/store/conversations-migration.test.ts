/**
 * The Conversations migration on databases written by the code before it (a639518, through its
 * store API, at-rest encryption on): a SQLite file and the rows of a Postgres schema, checked in
 * under fixtures/ with what that code read back. After the migration every record reads back the
 * same through the store API, processing carries on under the one compare-and-set rule, and down()
 * gives back the old tables row for row.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { DataSource } from 'typeorm';
import { asUnixSeconds } from '../../framework/relay/brand.js';
import { StaleStateError } from '../../framework/relay/errors.js';
import {
  relayDataSourceOptions,
  relayMigrations,
  runMigrations,
  TypeOrmRelayStore,
  type RelayBackend,
} from '../../framework/store/index.js';
import { FIXTURE_AT, FIXTURE_IDS, FIXTURE_STATE_KEY } from './fixtures/pre-conversations-data.js';
import { snapshotStore } from './fixtures/store-snapshot.js';
import { freshPgSchema, PG_URL, postgresAvailable, sqliteFile, tempDir } from './helpers.js';

type Rows = Array<Record<string, unknown>>;
const fixture = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as T;
const EXPECTED = fixture<{ snapshot: Record<string, unknown> }>('pre-conversations-expected.json').snapshot;
const PG_ROWS = fixture<{ rows: Record<string, Rows> }>('pre-conversations-postgres.json').rows;
const SQLITE_FIXTURE = new URL('./fixtures/pre-conversations.sqlite', import.meta.url);

const CONVERSATIONS = 'Conversations1796640000000';
/** The migration after Conversations: it runs with it, and is undone first to reach it. */
const LEASES = 'Leases1796652958681';
const OUTBOX_OWNER = 'OutboxOwner1796668800000';
const MESSAGE_SENDERS = 'MessageSenders1796700000000';
const EPOCH_STATE = 'EpochState1796710000000';
const NOW = asUnixSeconds(FIXTURE_AT);
/** The migrations the fixture's code had. */
const BEFORE = 5;
const [DM_ALICE, DM_BOB] = FIXTURE_IDS.sessions as [string, string];
const [TEAM] = FIXTURE_IDS.groups as [string];

interface Backend {
  kind: RelayBackend;
  options(): ReturnType<typeof relayDataSourceOptions>;
  teardown(): Promise<void>;
}

/** A copy of the checked-in SQLite file the old code wrote. */
function sqlite(): Backend {
  const dir = tempDir();
  const path = sqliteFile(dir.path);
  copyFileSync(SQLITE_FIXTURE, path);
  return {
    kind: 'sqlite',
    options: () => relayDataSourceOptions({ sqlitePath: path }),
    teardown: async () => dir.remove(),
  };
}

const pgParam = (v: unknown): unknown =>
  v !== null && typeof v === 'object' && 'hex' in v ? Buffer.from(String(v.hex), 'hex') : v;

/** A fresh schema at the old code's migrations, holding the rows the old code wrote. */
async function postgres(): Promise<Backend> {
  const { schema, drop } = await freshPgSchema();
  const options = () => relayDataSourceOptions({ url: PG_URL, schema });
  const ds = new DataSource({ ...options(), migrations: relayMigrations('postgres').slice(0, BEFORE) });
  await ds.initialize();
  await runMigrations(ds);
  for (const [table, rows] of Object.entries(PG_ROWS)) {
    if (table === 'relay_migrations') continue;
    for (const r of rows) {
      const cols = Object.keys(r);
      await ds.query(
        `INSERT INTO "${table}" (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
        cols.map((c) => pgParam(r[c])),
      );
    }
  }
  // As a restore does: the serial keys go on after the rows already there.
  for (const table of ['outbox', 'parked_inbound'])
    await ds.query(
      `SELECT setval(pg_get_serial_sequence('"${table}"', 'seq'), (SELECT max("seq") FROM "${table}"))`,
    );
  await ds.destroy();
  return { kind: 'postgres', options, teardown: drop };
}

const jsonSafe = (rows: Rows): Rows =>
  rows.map((r) =>
    Object.fromEntries(
      Object.entries(r).map(([k, v]) => [
        k,
        v instanceof Uint8Array ? { hex: Buffer.from(v).toString('hex') } : v,
      ]),
    ),
  );

function describeMigration(name: string, makeBackend: () => Promise<Backend>) {
  describe(`Conversations migration: ${name}`, () => {
    let backend: Backend;
    let ds: DataSource;
    let store: TypeOrmRelayStore;
    let oldTables: Record<'sessions' | 'groups', Rows>;

    const raw = async (sql: string) => jsonSafe((await ds.query(sql)) as Rows);

    beforeEach(async () => {
      backend = await makeBackend();
      ds = new DataSource(backend.options());
      await ds.initialize();
      oldTables = {
        sessions: await raw(`SELECT * FROM "sessions" ORDER BY "group_id"`),
        groups: await raw(`SELECT * FROM "groups" ORDER BY "group_id"`),
      };
      expect(await runMigrations(ds)).toEqual([
        CONVERSATIONS,
        LEASES,
        OUTBOX_OWNER,
        MESSAGE_SENDERS,
        EPOCH_STATE,
      ]);
      store = new TypeOrmRelayStore(ds, { stateKey: FIXTURE_STATE_KEY, closeDataSource: false });
    });
    afterEach(async () => {
      await store.close();
      if (ds.isInitialized) await ds.destroy();
      await backend.teardown();
    });

    it('moves every session and group into one table and reads every record back as the old code did', async () => {
      expect(oldTables.sessions).toHaveLength(2);
      expect(oldTables.groups).toHaveLength(2);
      const kinds = await raw(`SELECT "group_id", "kind" FROM "conversations" ORDER BY "group_id"`);
      expect(kinds).toEqual(
        [
          ...FIXTURE_IDS.sessions.map((g) => ({ group_id: g, kind: 'direct' })),
          ...FIXTURE_IDS.groups.map((g) => ({ group_id: g, kind: 'group' })),
        ].sort((a, b) => (a.group_id < b.group_id ? -1 : 1)),
      );
      const tables = await ds.createQueryRunner().getTables(['sessions', 'groups']);
      expect(tables).toEqual([]);
      expect((await ds.driver.createSchemaBuilder().log()).upQueries).toEqual([]);
      expect(await snapshotStore(store)).toEqual(EXPECTED);
    });

    it('keeps processing: a save at the migrated version goes through, a stale one changes nothing', async () => {
      const session = (await store.getSession(DM_ALICE))!;
      const group = (await store.getGroup(TEAM))!;
      expect([session.version, group.version]).toEqual([1, 1]);
      const load = await store.loadForMessage(DM_ALICE, FIXTURE_IDS.digests[0]!);
      expect(load?.processed).toBe(true);
      expect((await store.loadGroupForMessage(TEAM, FIXTURE_IDS.digests[1]!))?.processed).toBe(true);

      const reply = { id: 'after-1', topic: 't', payload: new Uint8Array([1]), createdAt: NOW };
      await store.commit({
        conversations: [
          { kind: 'direct', ...session, epoch: session.epoch + 1n, messagesSinceCommit: 0 },
          { kind: 'group', ...group, meta: '{"name":"Team 2"}' },
        ],
        processed: { groupId: session.groupId, digest: 'new-digest', at: NOW },
        outbox: [reply],
      });
      expect(await store.getSession(DM_ALICE)).toEqual({
        ...session,
        epoch: session.epoch + 1n,
        messagesSinceCommit: 0,
        version: 2,
      });
      expect(await store.getGroup(TEAM)).toEqual({ ...group, meta: '{"name":"Team 2"}', version: 2 });
      // The new outbox row replays after the ones the old code wrote.
      expect((await store.listOutbox()).map((o) => o.id)).toEqual([
        'ob-commit',
        'ob-welcome',
        'ob-reply',
        'after-1',
      ]);

      const before = await snapshotStore(store);
      await expect(
        store.commit({ conversations: [{ kind: 'direct', ...session }], outbox: [{ ...reply, id: 'x' }] }),
      ).rejects.toBeInstanceOf(StaleStateError);
      await expect(store.commit({ conversations: [{ kind: 'group', ...group }] })).rejects.toMatchObject({
        expectedVersion: 1,
        storedVersion: 2,
      });
      // A 1:1 conversation's id cannot be saved as a group.
      const bob = (await store.getSession(DM_BOB))!;
      await expect(
        store.commit({
          conversations: [
            { kind: 'group', ...group, groupId: bob.groupId, topicId: 'ee'.repeat(16), version: bob.version },
          ],
        }),
      ).rejects.toMatchObject({ code: 'STORAGE' });
      expect(await snapshotStore(store)).toEqual(before);
    });

    it('reverts: down() gives back the sessions and groups tables row for row', async () => {
      await store.close();
      await ds.undoLastMigration({ transaction: 'all' }); // EpochState
      await ds.undoLastMigration({ transaction: 'all' }); // MessageSenders
      await ds.undoLastMigration({ transaction: 'all' }); // OutboxOwner
      await ds.undoLastMigration({ transaction: 'all' }); // Leases
      await ds.undoLastMigration({ transaction: 'all' });
      expect(await raw(`SELECT * FROM "sessions" ORDER BY "group_id"`)).toEqual(oldTables.sessions);
      expect(await raw(`SELECT * FROM "groups" ORDER BY "group_id"`)).toEqual(oldTables.groups);
      expect(await ds.createQueryRunner().getTables(['conversations'])).toEqual([]);
      // And up again reads the same.
      expect(await runMigrations(ds)).toEqual([
        CONVERSATIONS,
        LEASES,
        OUTBOX_OWNER,
        MESSAGE_SENDERS,
        EPOCH_STATE,
      ]);
      store = new TypeOrmRelayStore(ds, { stateKey: FIXTURE_STATE_KEY, closeDataSource: false });
      expect(await snapshotStore(store)).toEqual(EXPECTED);
    });
  });
}

describeMigration('sqlite', async () => sqlite());

const pgUp = await postgresAvailable('the Postgres Conversations migration tests');
(pgUp ? describe : describe.skip)('Postgres', () => describeMigration('postgres', postgres));
