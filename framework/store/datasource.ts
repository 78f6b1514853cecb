/**
 * DataSource factory: Postgres for a postgres:// URL, otherwise an embedded SQLite file.
 * Schema changes only ever come from the migrations in ./migrations, never from `synchronize`.
 */
import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DataSource, type DataSourceOptions, type MigrationInterface } from 'typeorm';
import { ArgumentError, StorageError } from '../relay/errors.js';
import { relayEntities, type RelayBackend } from './entities.js';
import { loadSqliteDriver } from './sqlite-driver.js';
import { lockSqliteFile, type SqliteLockConnection } from './sqlite-process-lock.js';
import { Initial1795846949665 as PostgresInitial } from './migrations/postgres/1795846949665-Initial.js';
import { Initial1795846949665 as SqliteInitial } from './migrations/sqlite/1795846949665-Initial.js';
import { Groups1795854576242 as PostgresGroups } from './migrations/postgres/1795854576242-Groups.js';
import { Groups1795854576242 as SqliteGroups } from './migrations/sqlite/1795854576242-Groups.js';
import { ParkedInbound1796621651928 as PostgresParkedInbound } from './migrations/postgres/1796621651928-ParkedInbound.js';
import { ParkedInbound1796621651928 as SqliteParkedInbound } from './migrations/sqlite/1796621651928-ParkedInbound.js';
import { StateKey1796621877627 as PostgresStateKey } from './migrations/postgres/1796621877627-StateKey.js';
import { StateKey1796621877627 as SqliteStateKey } from './migrations/sqlite/1796621877627-StateKey.js';
import { OutboxQuarantine1796622191638 as PostgresOutboxQuarantine } from './migrations/postgres/1796622191638-OutboxQuarantine.js';
import { OutboxQuarantine1796622191638 as SqliteOutboxQuarantine } from './migrations/sqlite/1796622191638-OutboxQuarantine.js';
import { Conversations1796640000000 as PostgresConversations } from './migrations/postgres/1796640000000-Conversations.js';
import { Conversations1796640000000 as SqliteConversations } from './migrations/sqlite/1796640000000-Conversations.js';
import { Leases1796652958681 as PostgresLeases } from './migrations/postgres/1796652958681-Leases.js';
import { Leases1796652958681 as SqliteLeases } from './migrations/sqlite/1796652958681-Leases.js';
import { OutboxOwner1796668800000 as PostgresOutboxOwner } from './migrations/postgres/1796668800000-OutboxOwner.js';
import { OutboxOwner1796668800000 as SqliteOutboxOwner } from './migrations/sqlite/1796668800000-OutboxOwner.js';
import { MessageSenders1796700000000 as PostgresMessageSenders } from './migrations/postgres/1796700000000-MessageSenders.js';
import { MessageSenders1796700000000 as SqliteMessageSenders } from './migrations/sqlite/1796700000000-MessageSenders.js';
import { EpochState1796710000000 as PostgresEpochState } from './migrations/postgres/1796710000000-EpochState.js';
import { EpochState1796710000000 as SqliteEpochState } from './migrations/sqlite/1796710000000-EpochState.js';

/**
 * SQLite file used when no Postgres URL and no sqlitePath are given, relative to the working directory; its
 * folder is created if missing.
 */
export const DEFAULT_SQLITE_PATH = './data/relay.sqlite';
/** Named so the relay tables can share a Postgres database with an application's own migrations. */
export const MIGRATIONS_TABLE = 'relay_migrations';
const BUSY_TIMEOUT_MS = 5000;

/**
 * Which database createRelayDataSource opens (Postgres by URL, else SQLite) and whether it migrates on open.
 */
export interface RelayDataSourceOptions {
  /** postgres:// or postgresql:// selects Postgres; anything else (or nothing) selects SQLite. */
  url?: string;
  /** SQLite file; default ./data/relay.sqlite. */
  sqlitePath?: string;
  /** Postgres schema for the relay tables (created if missing); default: the server's search_path. */
  schema?: string;
  /** Run pending migrations on open (default true). */
  migrate?: boolean;
  /**
   * SQLite: refuse to open a file another process has open (default true; sqlite-process-lock.ts).
   * False only for a tool or test that inspects the file of a running bot, never for a second bot.
   */
  sqliteProcessLock?: boolean;
}

type Migration = new () => MigrationInterface;

/**
 * The relay tables' migration classes for one backend, oldest first; add them to your own DataSource to embed
 * the tables there.
 */
export function relayMigrations(kind: RelayBackend): Migration[] {
  return kind === 'postgres'
    ? [
        PostgresInitial,
        PostgresGroups,
        PostgresParkedInbound,
        PostgresStateKey,
        PostgresOutboxQuarantine,
        PostgresConversations,
        PostgresLeases,
        PostgresOutboxOwner,
        PostgresMessageSenders,
        PostgresEpochState,
      ]
    : [
        SqliteInitial,
        SqliteGroups,
        SqliteParkedInbound,
        SqliteStateKey,
        SqliteOutboxQuarantine,
        SqliteConversations,
        SqliteLeases,
        SqliteOutboxOwner,
        SqliteMessageSenders,
        SqliteEpochState,
      ];
}

/** Whether `url` selects Postgres (postgres:// or postgresql://, any case); anything else means SQLite. */
export const isPostgresUrl = (url: string | undefined): url is string =>
  url !== undefined && /^postgres(ql)?:\/\//i.test(url);

function checkSchemaName(schema: string): string {
  // Interpolated into search_path and DDL, so only plain identifiers.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new ArgumentError(`invalid Postgres schema name: ${schema}`);
  return schema;
}

function postgresOptions(url: string, schema: string | undefined): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: relayEntities('postgres'),
    migrations: relayMigrations('postgres'),
    migrationsTableName: MIGRATIONS_TABLE,
    ...(schema === undefined
      ? {}
      : {
          schema: checkSchemaName(schema),
          // The store's SQL and the migrations name tables unqualified; search_path points them here.
          extra: { options: `-c search_path=${schema}` },
        }),
  };
}

type SqliteConnection = SqliteLockConnection & { close(): unknown };

/** Pragmas for every connection. */
function prepareSqlite(db: SqliteConnection): void {
  db.pragma('journal_mode = WAL');
  // better-sqlite3's SQLite build opens an existing WAL file at synchronous=NORMAL, which can lose
  // the last commits on power failure: a PUBACK would then have been sent for a lost transaction.
  db.pragma('synchronous = FULL');
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
}

/** Pragmas, then the one-process lock; a refused connection is closed, since TypeORM would leak it. */
const prepareSqliteWithLock =
  (path: string, lock: boolean) =>
  (db: SqliteConnection): void => {
    prepareSqlite(db);
    if (!lock || path === ':memory:') return;
    try {
      lockSqliteFile(db, path);
    } catch (err) {
      db.close();
      throw err;
    }
  };

function sqliteOptions(path: string, lock: boolean): DataSourceOptions {
  return {
    type: 'better-sqlite3',
    // TypeORM would require('better-sqlite3'), which is 12.x; the running Node may need 13.x.
    driver: loadSqliteDriver(),
    database: path,
    timeout: BUSY_TIMEOUT_MS,
    prepareDatabase: prepareSqliteWithLock(path, lock),
    entities: relayEntities('sqlite'),
    migrations: relayMigrations('sqlite'),
    migrationsTableName: MIGRATIONS_TABLE,
  };
}

/** DataSource options without opening anything; what ormconfig.ts hands to the TypeORM CLI. */
export function relayDataSourceOptions(opts: RelayDataSourceOptions = {}): DataSourceOptions {
  if (isPostgresUrl(opts.url)) return postgresOptions(opts.url, opts.schema);
  const path = opts.sqlitePath ?? DEFAULT_SQLITE_PATH;
  if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
  return sqliteOptions(path, opts.sqliteProcessLock ?? true);
}

/** Applies pending migrations; returns the names of those it ran. */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  const ran = await ds.runMigrations({ transaction: 'all' });
  return ran.map((m) => m.name);
}

async function ensureSchema(ds: DataSource, schema: string | undefined): Promise<void> {
  if (schema !== undefined && ds.options.type === 'postgres')
    await ds.query(`CREATE SCHEMA IF NOT EXISTS "${checkSchemaName(schema)}"`);
}

/** First half of the advisory-lock key the relay's migrations take ("rely" in ASCII); the second is the schema. */
const MIGRATION_LOCK_CLASS = 0x72656c79;

/**
 * Runs `fn` holding a Postgres advisory lock for the relay schema, on a connection of its own:
 * replicas starting together on a fresh or older database would otherwise run the same
 * migrations at once and collide (a duplicate key in the catalog). The lock is per schema, so
 * unrelated schemas in one database do not wait for each other. SQLite needs none (one process).
 */
async function oneMigratorAtATime(ds: DataSource, schema: string | undefined, fn: () => Promise<void>) {
  if (ds.options.type !== 'postgres') return fn();
  const qr = ds.createQueryRunner();
  const key = [MIGRATION_LOCK_CLASS, schema ?? null];
  try {
    await qr.query(`SELECT pg_advisory_lock($1, hashtext(COALESCE($2::text, current_schema()::text)))`, key);
    return await fn();
  } finally {
    await qr
      .query(`SELECT pg_advisory_unlock($1, hashtext(COALESCE($2::text, current_schema()::text)))`, key)
      .catch(() => undefined);
    await qr.release();
  }
}

/**
 * Opens (and by default migrates) the relay database; throws StorageError if it cannot be opened or migrated,
 * leaving nothing open.
 */
export async function createRelayDataSource(opts: RelayDataSourceOptions = {}): Promise<DataSource> {
  const ds = new DataSource(relayDataSourceOptions(opts));
  try {
    await ds.initialize();
  } catch (cause) {
    if (cause instanceof StorageError) throw cause;
    throw new StorageError(`cannot open the relay database: ${(cause as Error).message}`, { cause });
  }
  try {
    await oneMigratorAtATime(ds, opts.schema, async () => {
      await ensureSchema(ds, opts.schema);
      if (opts.migrate ?? true) await runMigrations(ds);
    });
  } catch (cause) {
    await ds.destroy();
    throw new StorageError(`cannot migrate the relay database: ${(cause as Error).message}`, { cause });
  }
  return ds;
}
