/**
 * DataSource for the TypeORM CLI (migration:show, migration:revert…): Postgres when DATABASE_URL is a
 * postgres:// URL, else the default SQLite file. `relay-bot migrate` uses the same options.
 */
import { DataSource } from 'typeorm';
import { relayDataSourceOptions } from './framework/store/datasource.js';

export default new DataSource(
  relayDataSourceOptions({
    url: process.env.DATABASE_URL,
    sqlitePath: process.env.RELAY_SQLITE_PATH,
    schema: process.env.RELAY_DB_SCHEMA,
  }),
);
