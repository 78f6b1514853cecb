/**
 * createRelayStore: the root entry's way to open durable storage in one call. A postgres:// URL
 * selects Postgres, anything else an embedded SQLite file; pending migrations run on open, and the
 * store's close() also closes the database connection it opened.
 */
import { createRelayDataSource, type RelayDataSourceOptions } from './datasource.js';
import { TypeOrmRelayStore, type TypeOrmRelayStoreOptions } from './typeorm-store.js';

/** Where the database is (URL, SQLite path, schema) and the at-rest state key. */
export interface CreateRelayStoreOptions
  extends RelayDataSourceOptions, Pick<TypeOrmRelayStoreOptions, 'stateKey' | 'scrypt'> {}

/** Opens (and migrates) Postgres for a postgres:// URL, else an SQLite file, as a TypeOrmRelayStore. */
export async function createRelayStore(options: CreateRelayStoreOptions = {}): Promise<TypeOrmRelayStore> {
  const { stateKey, scrypt, ...database } = options;
  const dataSource = await createRelayDataSource(database);
  try {
    return new TypeOrmRelayStore(dataSource, {
      ...(stateKey !== undefined ? { stateKey } : {}),
      ...(scrypt !== undefined ? { scrypt } : {}),
    });
  } catch (e) {
    await dataSource.destroy();
    throw e;
  }
}
