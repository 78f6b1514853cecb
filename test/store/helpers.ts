/** Backends for the store tests: temp SQLite files and throwaway Postgres schemas. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import {
  createRelayDataSource,
  TypeOrmRelayStore,
  type TypeOrmRelayStoreOptions,
} from '../../framework/store/index.js';

export const PG_URL = process.env.RELAY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const redacted = (url: string) => {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
};

/** True when Postgres answers; prints why the Postgres tests are skipped when it does not. */
export async function postgresAvailable(what: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch (err) {
    console.warn(
      `skipping ${what}: Postgres at ${redacted(PG_URL)} does not answer (${(err as Error).message})`,
    );
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh schema per use, so parallel runs and reruns never see each other's rows. */
export async function freshPgSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = `relay_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`CREATE SCHEMA "${schema}"`);
  return { schema, drop: () => adminQuery(`DROP SCHEMA "${schema}" CASCADE`) };
}

export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'relay-store-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

let fileCounter = 0;
export const sqliteFile = (dir: string) => join(dir, `store-${++fileCounter}.sqlite`);

export interface OpenStore {
  store: TypeOrmRelayStore;
  ds: DataSource;
  cleanup(): Promise<void>;
}

export async function openSqliteAt(path: string, opts: TypeOrmRelayStoreOptions = {}): Promise<OpenStore> {
  const ds = await createRelayDataSource({ sqlitePath: path });
  const store = new TypeOrmRelayStore(ds, opts);
  return { store, ds, cleanup: () => store.close() };
}

export const openSqliteStore = (dir: string, opts: TypeOrmRelayStoreOptions = {}) =>
  openSqliteAt(sqliteFile(dir), opts);

export async function openPgIn(schema: string, opts: TypeOrmRelayStoreOptions = {}): Promise<OpenStore> {
  const ds = await createRelayDataSource({ url: PG_URL, schema });
  const store = new TypeOrmRelayStore(ds, opts);
  return { store, ds, cleanup: () => store.close() };
}

export async function openPgStore(opts: TypeOrmRelayStoreOptions = {}): Promise<OpenStore> {
  const { schema, drop } = await freshPgSchema();
  const opened = await openPgIn(schema, opts);
  return {
    ...opened,
    cleanup: async () => {
      await opened.cleanup();
      await drop();
    },
  };
}

/** Reopenable backend: the same file or schema, opened with whatever key a test chooses. */
export interface ReopenableBackend {
  open(opts?: TypeOrmRelayStoreOptions): Promise<OpenStore>;
  teardown(): Promise<void>;
}

export function sqliteBackend(): ReopenableBackend {
  const dir = tempDir();
  const path = sqliteFile(dir.path);
  return { open: (opts) => openSqliteAt(path, opts), teardown: async () => dir.remove() };
}

export async function pgBackend(): Promise<ReopenableBackend> {
  const { schema, drop } = await freshPgSchema();
  return { open: (opts) => openPgIn(schema, opts), teardown: drop };
}
