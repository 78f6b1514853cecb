/**
 * A database made before groups existed (Initial only) must upgrade in place: its rows survive, the
 * outbox keeps its replay order, and the upgraded schema is the one the entities describe.
 */
import { DataSource } from 'typeorm';
import {
  MIGRATIONS_TABLE,
  relayDataSourceOptions,
  relayMigrations,
  runMigrations,
  TypeOrmRelayStore,
  type RelayBackend,
} from '../../framework/store/index.js';
import { AtRestCipher } from '../../framework/store/crypto-at-rest.js';
import { freshPgSchema, PG_URL, postgresAvailable, sqliteFile, tempDir, type OpenStore } from './helpers.js';
import {
  at,
  bytes,
  direct,
  group,
  groupId,
  grouped,
  keyPackage,
  outbox,
  session,
  topicId,
} from './store-suite.js';

const KEY = new Uint8Array(32).fill(42);
const INITIAL = 'Initial1795846949665';
const GROUPS = 'Groups1795854576242';
const STATE_KEY = 'StateKey1796621877627';
const OUTBOX_QUARANTINE = 'OutboxQuarantine1796622191638';
const PARKED_INBOUND = 'ParkedInbound1796621651928';
const CONVERSATIONS = 'Conversations1796640000000';
const LEASES = 'Leases1796652958681';
const OUTBOX_OWNER = 'OutboxOwner1796668800000';
const MESSAGE_SENDERS = 'MessageSenders1796700000000';
const EPOCH_STATE = 'EpochState1796710000000';

type StoreOptions = ConstructorParameters<typeof TypeOrmRelayStore>[1];

interface Backend {
  kind: RelayBackend;
  /** The same database, with only the migrations that existed before groups. */
  openInitialOnly(): Promise<DataSource>;
  /** The same database with every migration, reporting which ones this open ran. */
  open(opts?: StoreOptions): Promise<OpenStore & { ran: string[] }>;
  teardown(): Promise<void>;
}

function sqlite(): Backend {
  const dir = tempDir();
  const path = sqliteFile(dir.path);
  const options = () => relayDataSourceOptions({ sqlitePath: path });
  return {
    kind: 'sqlite',
    openInitialOnly: () => initialOnly(options(), 'sqlite'),
    open: (opts) => openStore(options(), opts),
    teardown: async () => dir.remove(),
  };
}

async function postgres(): Promise<Backend> {
  const { schema, drop } = await freshPgSchema();
  const options = () => relayDataSourceOptions({ url: PG_URL, schema });
  return {
    kind: 'postgres',
    openInitialOnly: () => initialOnly(options(), 'postgres'),
    open: (opts) => openStore(options(), opts),
    teardown: drop,
  };
}

async function initialOnly(
  options: ReturnType<typeof relayDataSourceOptions>,
  kind: RelayBackend,
): Promise<DataSource> {
  const ds = new DataSource({ ...options, migrations: relayMigrations(kind).slice(0, 1) });
  await ds.initialize();
  return ds;
}

async function openStore(
  options: ReturnType<typeof relayDataSourceOptions>,
  opts: StoreOptions = {},
): Promise<OpenStore & { ran: string[] }> {
  const ds = new DataSource(options);
  await ds.initialize();
  const ran = await runMigrations(ds);
  const store = new TypeOrmRelayStore(ds, opts);
  return { store, ds, ran, cleanup: () => store.close() };
}

function describeUpgrade(name: string, makeBackend: () => Promise<Backend>) {
  describe(`upgrade from Initial: ${name}`, () => {
    let backend: Backend;
    beforeEach(async () => {
      backend = await makeBackend();
    });
    afterEach(() => backend.teardown());

    it('keeps existing rows, adds groups and await_ack, and matches the entity schemas', async () => {
      const old = await backend.openInitialOnly();
      expect(await runMigrations(old)).toEqual([INITIAL]);
      // What a release without groups wrote: sessions, a key package, and outbox rows with no flag.
      // Written as that release's store did under a 32-byte key (only state and the private key
      // package sealed); today's store needs relay_meta, which Initial does not have.
      const p = (n: number) => (backend.kind === 'postgres' ? `$${n}` : '?');
      const legacy = new AtRestCipher(KEY);
      const s = session('g1');
      await old.query(
        `INSERT INTO "sessions" ("group_id", "peer_id", "state", "epoch", "version", "initiated_unconfirmed", "inbound_access_current", "messages_since_commit", "unconfirmed_outgoing", "updated_at", "at_rest") VALUES (${[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(p).join(', ')})`,
        [
          s.groupId,
          s.peerId,
          Buffer.from(legacy.seal(s.state, { table: 'sessions', column: 'state', key: s.groupId })),
          s.epoch.toString(),
          1,
          backend.kind === 'postgres' ? false : 0,
          Buffer.from(s.inboundAccess.current),
          0,
          '[]',
          s.updatedAt,
          1,
        ],
      );
      const kp = keyPackage('kp1');
      await old.query(
        `INSERT INTO "key_packages" ("ref", "key_package", "private_key_package", "created_at", "not_after", "at_rest") VALUES (${[1, 2, 3, 4, 5, 6].map(p).join(', ')})`,
        [
          kp.ref,
          Buffer.from(kp.keyPackage),
          Buffer.from(
            legacy.seal(kp.privateKeyPackage, {
              table: 'key_packages',
              column: 'private_key_package',
              key: 'kp1',
            }),
          ),
          kp.createdAt,
          kp.notAfter,
          1,
        ],
      );
      for (const id of ['old1', 'old2'])
        await old.query(
          `INSERT INTO "outbox" ("id", "topic", "payload", "created_at") VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`,
          [id, `relay/v1/inbox/${id}`, Buffer.from(bytes(64, id.length)), at()],
        );
      await old.destroy();

      const { store, ds, ran, cleanup } = await backend.open({ stateKey: KEY });
      try {
        expect(ran).toEqual([
          GROUPS,
          PARKED_INBOUND,
          STATE_KEY,
          OUTBOX_QUARANTINE,
          CONVERSATIONS,
          LEASES,
          OUTBOX_OWNER,
          MESSAGE_SENDERS,
          EPOCH_STATE,
        ]);
        expect(await ds.query(`SELECT COUNT(*) AS "n" FROM "${MIGRATIONS_TABLE}"`)).toEqual([
          { n: backend.kind === 'postgres' ? '10' : 10 },
        ]);
        expect((await ds.driver.createSchemaBuilder().log()).upQueries).toEqual([]);

        // Written before session expiry existed: no unusedSince, so it never expires.
        expect(await store.getSession(groupId('g1'))).toEqual({ ...session('g1'), version: 1 });
        expect(await store.deleteUnusedSessions(at(1_000_000))).toEqual([]);
        expect(await store.listParkedInbound()).toEqual([]);
        expect(await store.listKeyPackages()).toEqual([keyPackage('kp1')]);
        expect(await store.listOutbox()).toEqual([outbox('old1'), outbox('old2')]);
        // Rows from before replicas are rows of no replica: any replica reads them back.
        expect(await store.listOutbox(10, 'bots/0')).toEqual([outbox('old1'), outbox('old2')]);
        expect(await store.listOutboxOwners()).toEqual([]);
        expect(await store.listGroups()).toEqual([]);

        await store.commit({
          conversations: [direct(session('g1', { version: 1 })), grouped(group('a1'))],
          outbox: [outbox('new1', { awaitAck: true })],
        });
        await store.commit({
          conversations: [group('a1', { version: 1 })].map(grouped),
          outbox: [outbox('new2')],
        });
        expect(await store.getGroupByTopic(topicId('a1'))).toEqual({ ...group('a1'), version: 2 });
        // New rows replay after the ones written before the upgrade.
        expect(await store.listOutbox()).toEqual([
          outbox('old1'),
          outbox('old2'),
          outbox('new1', { awaitAck: true }),
          outbox('new2'),
        ]);
        expect((await store.getGroup(groupId('a1')))?.version).toBe(2);
      } finally {
        await cleanup();
      }
    });

    it('upgrades once: a second open runs nothing', async () => {
      const old = await backend.openInitialOnly();
      await runMigrations(old);
      await old.destroy();
      const first = await backend.open();
      await first.cleanup();
      const second = await backend.open();
      try {
        expect(second.ran).toEqual([]);
        expect(await second.ds.showMigrations()).toBe(false);
      } finally {
        await second.cleanup();
      }
    });
  });
}

describeUpgrade('sqlite', async () => sqlite());

const pgUp = await postgresAvailable('the Postgres upgrade tests');
(pgUp ? describe : describe.skip)('Postgres', () => describeUpgrade('postgres', postgres));
