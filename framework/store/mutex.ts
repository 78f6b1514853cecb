/**
 * A FIFO async lock. TypeORM's better-sqlite3 driver shares one connection (one query runner) among
 * all callers, so two interleaved transactions would nest as savepoints and a read could see another
 * caller's uncommitted rows; every SQLite operation of a store therefore runs through its own Mutex.
 */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    // A failed task must not poison the queue for the callers behind it.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
