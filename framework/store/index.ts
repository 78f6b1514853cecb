/**
 * Durable storage for the relay layer, published as `relay-bot/store`: a RelayStore on TypeORM,
 * Postgres or embedded SQLite.
 *
 * Commonly used: createRelayStore (createRelayDataSource + TypeOrmRelayStore in one call; also
 * exported from the package root). Expert: the entity schemas and migrations, for tooling and for
 * embedding the tables in an application's own DataSource.
 */
export { createRelayStore, type CreateRelayStoreOptions } from './create-relay-store.js';
export { TypeOrmRelayStore, type TypeOrmRelayStoreOptions } from './typeorm-store.js';
export {
  createRelayDataSource,
  runMigrations,
  relayDataSourceOptions,
  relayMigrations,
  isPostgresUrl,
  DEFAULT_SQLITE_PATH,
  MIGRATIONS_TABLE,
  type RelayDataSourceOptions,
} from './datasource.js';
export { relayEntities, type RelayBackend } from './entities.js';
export { TypeOrmLeaseStore, type LeaseSqlRunner } from './lease-store.js';
export { SQLITE_LOCK_SUFFIX, DatabaseInUseError } from './sqlite-process-lock.js';
export { deriveStateKey } from './crypto-at-rest.js';
export { parseStateKey, SCRYPT_DEFAULTS, type StateKeyInput } from './state-key.js';
