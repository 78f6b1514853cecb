/**
 * Which better-sqlite3 the embedded SQLite store runs on. No single major installs and runs on every
 * supported Node line: 12 aborts the process on Node 24.19+ when the garbage collector frees a
 * prepared statement (test/store/sqlite-gc.test.ts), and 13, built on Node-API 10, segfaults on
 * Node 20, which only has Node-API 9. So both are dependencies: 12 as `better-sqlite3`, 13 as the
 * optional `better-sqlite3-13` (npm skips it on Node 20 by its engines field; it ships prebuilt
 * Node-API binaries, so it needs no compiler and no per-ABI build). The choice follows what the
 * running Node offers, not its version number, since Node-API 10 is exactly what 13 requires.
 */
import { createRequire } from 'node:module';
import { StorageError } from '../relay/errors.js';

export type SqliteDriverPackage = 'better-sqlite3' | 'better-sqlite3-13';

/** The Node-API version better-sqlite3 13's binaries are built for (its binding.gyp). */
export const SQLITE_13_NAPI_VERSION = 10;

/** The package for a Node whose `process.versions.napi` is `napi`. */
export function sqliteDriverPackage(napi: string | undefined = process.versions.napi): SqliteDriverPackage {
  return Number(napi) >= SQLITE_13_NAPI_VERSION ? 'better-sqlite3-13' : 'better-sqlite3';
}

const requireHere = createRequire(import.meta.url);

/**
 * The better-sqlite3 module (its Database constructor) for the running Node, for TypeORM's `driver`
 * option. Throws StorageError when that package does not load: an optional dependency leaves no
 * trace when npm skipped it, which happens when node_modules was installed by an older Node.
 */
export function loadSqliteDriver(
  pkg: SqliteDriverPackage = sqliteDriverPackage(),
  load: (id: string) => unknown = requireHere,
): unknown {
  try {
    return load(pkg);
  } catch (err) {
    throw new StorageError(
      `the embedded SQLite needs ${pkg} on Node ${process.version} (Node-API ` +
        `${process.versions.napi ?? 'unknown'}), and it does not load. Fix: run \`npm ci\` with this ` +
        `Node, so npm installs the optional dependencies for it; or use Postgres (database.url)`,
      { cause: err },
    );
  }
}
