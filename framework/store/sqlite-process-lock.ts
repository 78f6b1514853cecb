/**
 * The embedded SQLite database serves one process (ARCHITECTURE.md "One identity, many processes"):
 * two bots on one file would both act as committer, publisher and scheduler with nothing to split
 * the work, since leases only mean something across processes on Postgres.
 *
 * The guard is an exclusive SQLite lock on a small companion file, `<database>-process.lock`, held
 * by the store's own connection for as long as it is open. The operating system drops the lock
 * when the process dies, even by SIGKILL, so a crash leaves nothing stale behind, unlike a pid
 * file; and two containers on one volume see each other's lock, where both would be pid 1.
 */
import { StorageError } from '../relay/errors.js';

/** Appended to the database path to name the lock file. */
export const SQLITE_LOCK_SUFFIX = '-process.lock';
/** The schema name the lock file is attached under on the store's connection. */
const LOCK_SCHEMA = 'relay_process_lock';

/** The part of a better-sqlite3 Database this module uses. */
export interface SqliteLockConnection {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(source: string): unknown;
  prepare(source: string): { run(...params: unknown[]): unknown };
}

/** The SQLite file is held by another process (or another open store in this one). */
export class DatabaseInUseError extends StorageError {}

const isBusy = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
};

/**
 * Takes the one-process lock of the database at `path` on `db` (the connection the store keeps
 * open), or throws StorageError naming the fix when another process, or another open store in this
 * process, holds it. Does not wait: a bot started twice should fail at once, not after a timeout.
 */
export function lockSqliteFile(db: SqliteLockConnection, path: string): void {
  const lockPath = `${path}${SQLITE_LOCK_SUFFIX}`;
  const busyTimeout = db.pragma('busy_timeout', { simple: true });
  db.pragma('busy_timeout = 0');
  try {
    // ATTACH reads the file's schema, so a held lock refuses it already.
    db.prepare(`ATTACH DATABASE ? AS "${LOCK_SCHEMA}"`).run(lockPath);
    // EXCLUSIVE: once written, the lock file stays locked until this connection closes.
    db.pragma(`"${LOCK_SCHEMA}".locking_mode = EXCLUSIVE`);
    db.exec(
      `CREATE TABLE IF NOT EXISTS "${LOCK_SCHEMA}"."holder" ("id" integer PRIMARY KEY, "pid" integer NOT NULL, "locked_at" integer NOT NULL)`,
    );
    // A write is what takes the exclusive lock; the row itself only helps someone reading the file later.
    db.prepare(`INSERT OR REPLACE INTO "${LOCK_SCHEMA}"."holder" VALUES (1, ?, ?)`).run(
      process.pid,
      Date.now(),
    );
  } catch (err) {
    if (!isBusy(err)) throw err;
    throw new DatabaseInUseError(
      `the SQLite database ${path} is already open in another process (or another store in this one): ` +
        `its lock file ${lockPath} is held. SQLite serves a single process. Fix: stop the other ` +
        `process, or use Postgres (database.url) to run several replicas of one bot`,
      { cause: err },
    );
  } finally {
    db.pragma(`busy_timeout = ${Number(busyTimeout)}`);
  }
}
