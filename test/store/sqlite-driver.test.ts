/**
 * framework/store/sqlite-driver.ts: the better-sqlite3 the embedded store runs on follows the
 * running Node's Node-API version (12 below 10, 13 from 10), and TypeORM is handed that module.
 * Under `npm run test:node -- <major>` this runs on that line and checks the choice made there.
 */
import { createRequire } from 'node:module';
import { StorageError } from '../../framework/relay/errors.js';
import { relayDataSourceOptions } from '../../framework/store/datasource.js';
import {
  loadSqliteDriver,
  sqliteDriverPackage,
  type SqliteDriverPackage,
} from '../../framework/store/sqlite-driver.js';
import { createRelayDataSource } from '../../framework/store/index.js';

const requireHere = createRequire(import.meta.url);
const majorOf = (pkg: SqliteDriverPackage): number =>
  Number((requireHere(`${pkg}/package.json`) as { version: string }).version.split('.')[0]);

test('Node-API 9 (Node 20) gets better-sqlite3 12; Node-API 10 and later get 13', () => {
  expect(sqliteDriverPackage('8')).toBe('better-sqlite3');
  expect(sqliteDriverPackage('9')).toBe('better-sqlite3');
  expect(sqliteDriverPackage('10')).toBe('better-sqlite3-13');
  expect(sqliteDriverPackage('11')).toBe('better-sqlite3-13');
});

test('on this Node the store loads the major the rule names', () => {
  const pkg = sqliteDriverPackage();
  expect(pkg).toBe(Number(process.versions.napi) >= 10 ? 'better-sqlite3-13' : 'better-sqlite3');
  expect(majorOf(pkg)).toBe(pkg === 'better-sqlite3-13' ? 13 : 12);
  expect(loadSqliteDriver()).toBe(requireHere(pkg));
});

test('a driver package that does not load is a StorageError naming it and the fix', () => {
  const missing = (id: string): never => {
    throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
  };
  let thrown: unknown;
  try {
    loadSqliteDriver('better-sqlite3-13', missing);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(StorageError);
  expect((thrown as StorageError).code).toBe('STORAGE');
  expect((thrown as Error).message).toMatch(/better-sqlite3-13 .*Fix: run `npm ci` with this Node/);
  expect((thrown as Error).cause).toBeInstanceOf(Error);
});

test('the SQLite DataSource is opened with that driver, and it runs queries', async () => {
  const options = relayDataSourceOptions({ sqlitePath: ':memory:' });
  expect((options as { driver?: unknown }).driver).toBe(loadSqliteDriver());
  const ds = await createRelayDataSource({ sqlitePath: ':memory:' });
  try {
    expect((ds.driver as unknown as { sqlite: unknown }).sqlite).toBe(loadSqliteDriver());
    const [row] = (await ds.query('SELECT sqlite_version() AS v')) as { v: string }[];
    expect(row!.v).toMatch(/^3\.\d+\.\d+$/);
  } finally {
    await ds.destroy();
  }
});
