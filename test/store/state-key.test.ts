/**
 * RELAY_STATE_KEY rules: a raw key (32 bytes, 64 hex, base64 of 32 bytes) as it is, anything else
 * through scrypt with a per-database salt in relay_meta; databases sealed by the release before
 * (legacy-sealed.json, written by that release's code) are re-sealed on their first keyed open; the
 * key can be rotated in one transaction.
 */
import { readFileSync } from 'node:fs';
import { DataSource } from 'typeorm';
import type { UnixSeconds } from '../../framework/relay/brand.js';
import { ArgumentError } from '../../framework/relay/errors.js';
import {
  relayDataSourceOptions,
  relayMigrations,
  runMigrations,
  TypeOrmRelayStore,
  type RelayBackend,
} from '../../framework/store/index.js';
import { parseStateKey, SCRYPT_DEFAULTS } from '../../framework/store/state-key.js';
import { freshPgSchema, PG_URL, postgresAvailable, sqliteFile, tempDir } from './helpers.js';

type Dump = Record<string, Array<Record<string, unknown>>>;
interface Fixture {
  stateKey: string;
  rows: Dump;
}
const FIXTURES = JSON.parse(
  readFileSync(new URL('./fixtures/legacy-sealed.json', import.meta.url), 'utf8'),
) as { passphrase: Fixture; hex: Fixture };

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const GROUP = 'ab'.repeat(32);
const BOOLEAN_COLUMNS = new Set(['initiated_unconfirmed', 'retain', 'await_ack']);
/** The release before the state key record had these two migrations. */
const LEGACY_MIGRATIONS = 2;

interface Db {
  kind: RelayBackend;
  /** A DataSource on the same database; `migrations`: how many of them (all by default). */
  connect(migrations?: number): Promise<DataSource>;
  teardown(): Promise<void>;
}

function sqliteDb(): Db {
  const dir = tempDir();
  const path = sqliteFile(dir.path);
  return {
    kind: 'sqlite',
    connect: (n) => connect(relayDataSourceOptions({ sqlitePath: path }), 'sqlite', n),
    teardown: async () => dir.remove(),
  };
}

async function pgDb(): Promise<Db> {
  const { schema, drop } = await freshPgSchema();
  return {
    kind: 'postgres',
    connect: (n) => connect(relayDataSourceOptions({ url: PG_URL, schema }), 'postgres', n),
    teardown: drop,
  };
}

async function connect(
  options: ReturnType<typeof relayDataSourceOptions>,
  kind: RelayBackend,
  migrations?: number,
): Promise<DataSource> {
  const all = relayMigrations(kind);
  const ds = new DataSource({ ...options, migrations: all.slice(0, migrations ?? all.length) });
  await ds.initialize();
  await runMigrations(ds);
  return ds;
}

const param = (kind: RelayBackend, column: string, v: unknown): unknown => {
  if (v !== null && typeof v === 'object' && 'hex' in v) return Buffer.from(String(v.hex), 'hex');
  if (kind === 'postgres' && BOOLEAN_COLUMNS.has(column) && v !== null) return v === 1 || v === true;
  return v;
};

/** The legacy rows, inserted as the old release left them, into a database at its schema. */
async function loadLegacy(db: Db, rows: Dump): Promise<void> {
  const ds = await db.connect(LEGACY_MIGRATIONS);
  try {
    for (const [table, list] of Object.entries(rows))
      for (const r of list) {
        const cols = Object.keys(r);
        const marks = cols.map((_, i) => (db.kind === 'postgres' ? `$${i + 1}` : '?')).join(', ');
        await ds.query(
          `INSERT INTO "${table}" (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${marks})`,
          cols.map((c) => param(db.kind, c, r[c])),
        );
      }
  } finally {
    await ds.destroy();
  }
}

async function withStore<T>(
  db: Db,
  stateKey: Uint8Array | string,
  fn: (store: TypeOrmRelayStore, ds: DataSource) => Promise<T>,
): Promise<T> {
  const ds = await db.connect();
  const store = new TypeOrmRelayStore(ds, { stateKey });
  try {
    return await fn(store, ds);
  } finally {
    await store.close();
  }
}

const rawRows = async (ds: DataSource, table: string) =>
  (await ds.query(`SELECT * FROM "${table}"`)) as Array<Record<string, unknown>>;
/** One kind's rows of the conversations table (the sessions and groups tables before issue 11). */
const rawConversations = async (ds: DataSource, kind: 'direct' | 'group') =>
  (await ds.query(`SELECT * FROM "conversations" WHERE "kind" = '${kind}'`)) as Array<
    Record<string, unknown>
  >;
const hexOf = (v: unknown) => Buffer.from(v as Uint8Array).toString('hex');

/** What the legacy writer stored, read back through the store. */
async function expectLegacyValues(store: TypeOrmRelayStore): Promise<void> {
  expect(await store.loadIdentity()).toEqual({
    signingSeed: fill(32, 1),
    sealSecret: fill(32, 2),
    createdAt: 1796600000,
  });
  expect((await store.listKeyPackages())[0]?.privateKeyPackage).toEqual(fill(96, 4));
  const s = await store.getSession('g1');
  expect(s?.state).toEqual(fill(200, 5));
  expect(s?.inboundAccess).toEqual({ current: fill(32, 6), previous: fill(32, 7) });
  expect(s?.unconfirmedOutgoing).toEqual(['the launch code is 1234']);
  expect((await store.getGroup(GROUP))?.meta).toBe('{"name":"Secret Planning Committee"}');
  expect(await store.getConversationData('dm:alice')).toBe('{"note":"meet at the harbour"}');
  expect((await store.listOutbox()).map((o) => o.id)).toEqual(['o1']);
}

async function expectSealedInRaw(ds: DataSource): Promise<void> {
  const [s] = await rawConversations(ds, 'direct');
  expect(hexOf(s!.inbound_access_current)).not.toContain('06'.repeat(32));
  expect(String(s!.unconfirmed_outgoing)).not.toContain('launch');
  const [g] = await rawConversations(ds, 'group');
  expect(String(g!.meta)).not.toContain('Secret');
  const [d] = await rawRows(ds, 'conversation_data');
  expect(String(d!.json)).not.toContain('harbour');
  expect(Number(d!.at_rest)).toBe(1);
}

const keyError = expect.objectContaining({
  code: 'STORAGE',
  message: expect.stringContaining('RELAY_STATE_KEY'),
});

function describeStateKey(name: string, makeDb: () => Promise<Db>) {
  describe(`state key: ${name}`, () => {
    let db: Db;
    beforeEach(async () => {
      db = await makeDb();
    });
    afterEach(() => db.teardown());

    it.each(['passphrase', 'hex'] as const)(
      'opens a database the previous release sealed (%s key) and re-seals every secret column',
      async (which) => {
        const fixture = FIXTURES[which];
        await loadLegacy(db, fixture.rows);
        await withStore(db, fixture.stateKey, async (store, ds) => {
          await expectLegacyValues(store);
          await expectSealedInRaw(ds);
          const [meta] = await rawRows(ds, 'relay_meta');
          const record = JSON.parse(String(meta!.value)) as { scrypt: unknown; salt: string };
          expect(record.scrypt).toEqual(SCRYPT_DEFAULTS);
          expect(Buffer.from(record.salt, 'base64')).toHaveLength(16);
        });
        // Upgraded once: the next open reads the same values under the new derivation.
        await withStore(db, fixture.stateKey, expectLegacyValues);
        if (which === 'hex')
          // 64 hex characters are the raw key now: the same 32 bytes open it.
          await withStore(db, Buffer.from(fixture.stateKey, 'hex'), expectLegacyValues);
      },
      60_000,
    );

    it('refuses a legacy database under the wrong key and leaves it as it was', async () => {
      await loadLegacy(db, FIXTURES.passphrase.rows);
      await withStore(db, 'not the passphrase', async (store, ds) => {
        const before = await rawConversations(ds, 'direct');
        await expect(store.loadIdentity()).rejects.toThrow(keyError);
        expect(await rawConversations(ds, 'direct')).toEqual(before);
        expect(await rawRows(ds, 'relay_meta')).toEqual([]);
      });
      await withStore(db, FIXTURES.passphrase.stateKey, expectLegacyValues);
    }, 60_000);

    it('gives each database its own salt, and refuses a wrong passphrase before reading a row', async () => {
      const other = await makeDb();
      try {
        const salts: string[] = [];
        for (const d of [db, other])
          await withStore(d, 'same passphrase', async (store, ds) => {
            await store.saveIdentity({
              signingSeed: fill(32, 1),
              sealSecret: fill(32, 2),
              createdAt: 1 as UnixSeconds,
            });
            const [meta] = await rawRows(ds, 'relay_meta');
            salts.push((JSON.parse(String(meta!.value)) as { salt: string }).salt);
          });
        expect(salts[0]).not.toBe(salts[1]);
        await withStore(db, 'another passphrase', async (store) => {
          await expect(store.loadIdentity()).rejects.toThrow(/wrong RELAY_STATE_KEY/);
          await expect(store.listOutbox()).rejects.toThrow(/wrong RELAY_STATE_KEY/);
        });
      } finally {
        await other.teardown();
      }
    }, 60_000);

    it('rotates the key: every sealed value opens under the new key only', async () => {
      await loadLegacy(db, FIXTURES.passphrase.rows);
      const next = Buffer.alloc(32, 0x77).toString('base64');
      await withStore(db, FIXTURES.passphrase.stateKey, async (store, ds) => {
        const before = hexOf((await rawConversations(ds, 'direct'))[0]!.inbound_access_current);
        // Identity, key package, session, group, conversation data.
        expect(await store.rotateStateKey(next)).toBe(5);
        expect(hexOf((await rawConversations(ds, 'direct'))[0]!.inbound_access_current)).not.toBe(before);
        // The same store carries on under the new key.
        await expectLegacyValues(store);
      });
      await withStore(db, FIXTURES.passphrase.stateKey, async (store) => {
        await expect(store.loadIdentity()).rejects.toThrow(keyError);
        await expect(store.rotateStateKey('whatever')).rejects.toThrow(keyError);
      });
      await withStore(db, new Uint8Array(32).fill(0x77), expectLegacyValues);
    }, 60_000);
  });
}

describe('parseStateKey', () => {
  it('takes 32 bytes, 64 hex characters and base64 of 32 bytes as raw keys', () => {
    const key = fill(32, 0xfe);
    expect(parseStateKey(key)).toEqual({ raw: key });
    expect(parseStateKey('fe'.repeat(32))).toEqual({ raw: key });
    expect(parseStateKey('FE'.repeat(32))).toEqual({ raw: key });
    expect(parseStateKey(Buffer.from(key).toString('base64'))).toEqual({ raw: key });
    expect(parseStateKey(Buffer.from(key).toString('base64url'))).toEqual({ raw: key });
  });

  it('treats everything else as a passphrase, and refuses empty keys and short byte keys', () => {
    expect(parseStateKey('hunter2')).toEqual({ passphrase: 'hunter2' });
    expect(parseStateKey('fe'.repeat(31))).toEqual({ passphrase: 'fe'.repeat(31) });
    // 44 base64 characters that decode to 33 bytes are not a key.
    const long = Buffer.alloc(33, 1).toString('base64');
    expect(parseStateKey(long)).toEqual({ passphrase: long });
    expect(() => parseStateKey('')).toThrow(ArgumentError);
    expect(() => parseStateKey(new Uint8Array(16))).toThrow(ArgumentError);
  });
});

describeStateKey('sqlite', async () => sqliteDb());

const pgUp = await postgresAvailable('the Postgres state-key tests');
(pgUp ? describe : describe.skip)('Postgres', () => describeStateKey('postgres', pgDb));

test('a malformed key is refused when the store is made, before any database work', async () => {
  const db = sqliteDb();
  const ds = await db.connect();
  try {
    expect(() => new TypeOrmRelayStore(ds, { stateKey: '' })).toThrow(ArgumentError);
    expect(() => new TypeOrmRelayStore(ds, { stateKey: new Uint8Array(16) })).toThrow(ArgumentError);
  } finally {
    await ds.destroy();
    await db.teardown();
  }
});
