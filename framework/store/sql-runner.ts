/**
 * Where the TypeORM store's statements run: a connection per call, transactions that begin the way
 * each backend needs, and on SQLite one caller at a time (its one shared connection).
 */
import type { DataSource, QueryRunner } from 'typeorm';
import type { RelayBackend } from './entities.js';
import { Mutex } from './mutex.js';
import { sqlOn, type Sql } from './sql.js';

interface Tx {
  begin(): Promise<unknown>;
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
}

const typeOrmTx = (qr: QueryRunner): Tx => ({
  begin: async () => {
    await qr.connect();
    await qr.startTransaction();
  },
  commit: () => qr.commitTransaction(),
  rollback: () => qr.rollbackTransaction(),
});

/**
 * TypeORM begins SQLite transactions DEFERRED; a deferred reader that later writes can fail with
 * SQLITE_BUSY at once, ignoring busy_timeout, when another process (a CLI next to the bot) wrote
 * meanwhile. IMMEDIATE takes the write lock up front and waits politely instead.
 */
const sqliteTx = (qr: QueryRunner): Tx => ({
  begin: () => qr.query('BEGIN IMMEDIATE'),
  commit: () => qr.query('COMMIT'),
  rollback: () => qr.query('ROLLBACK'),
});

/** Runs SQL on a DataSource, outside or inside a transaction. */
export class SqlRunner {
  readonly backend: RelayBackend;
  /** SQLite only: one shared connection, so every operation takes its turn. */
  private readonly mutex: Mutex | undefined;

  /**
   * `shared` serialises through another runner's turn instead of one of its own: a second runner
   * on the same SQLite DataSource (the lease store next to the relay store) must not slip a
   * statement into the first one's open transaction.
   */
  constructor(
    private readonly ds: DataSource,
    backend: RelayBackend,
    private readonly shared?: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {
    this.backend = backend;
    this.mutex = backend === 'sqlite' && !shared ? new Mutex() : undefined;
  }

  /** Runs `fn` after every operation queued before it (SQLite); at once on Postgres. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    if (this.shared) return this.shared(fn);
    return this.mutex ? this.mutex.run(fn) : fn();
  }

  /** Statements without a transaction: each one is atomic on its own. */
  once<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      const qr = this.ds.createQueryRunner();
      try {
        return await fn(sqlOn(qr, this.backend));
      } finally {
        await qr.release();
      }
    });
  }

  /** Statements in one transaction, rolled back when `fn` throws. */
  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      const qr = this.ds.createQueryRunner();
      const tx = this.backend === 'sqlite' ? sqliteTx(qr) : typeOrmTx(qr);
      await tx.begin();
      try {
        const result = await fn(sqlOn(qr, this.backend));
        await tx.commit();
        return result;
      } catch (err) {
        // The original failure matters more than a rollback on a connection that may be gone.
        await tx.rollback().catch(() => undefined);
        throw err;
      } finally {
        await qr.release();
      }
    });
  }
}
