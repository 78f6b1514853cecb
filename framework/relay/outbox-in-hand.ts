/**
 * Outbox rows the publisher already holds in memory because this process committed them (issue 12:
 * no read-back of the outbox per message). A row is noted when its commit starts and handed over
 * when the commit resolved, in that order; a read-back of the store that lists a row first takes
 * it out of here, so a row goes out by one path only, even when the read-back saw the commit land
 * before its promise resolved.
 */
import type { OutboxRecord } from './store.js';

/** Committing: the commit has not resolved yet. Handed: committed, waiting to be published. */
type RowState = 'committing' | 'handed';

export class RowsInHand {
  private readonly states = new Map<string, RowState>();
  /** Handed rows in the order their commits resolved; entries a read-back took are skipped. */
  private queue: OutboxRecord[] = [];

  /** @param limit handed rows held at most; beyond it they are dropped (the store still has them). */
  constructor(private readonly limit: number) {}

  /** Handed rows waiting, including any a read-back took since (not yet skipped). */
  get size(): number {
    return this.queue.length;
  }

  /** A commit carrying these rows is about to start. */
  committing(rows: readonly OutboxRecord[]): void {
    for (const r of rows) this.states.set(r.id, 'committing');
  }

  /**
   * The commit is durable: its rows not already listed by a read-back join the queue. False when
   * that overflowed the limit and every handed row was dropped, so a read-back must find them.
   */
  committed(rows: readonly OutboxRecord[]): boolean {
    for (const r of rows) {
      if (this.states.get(r.id) !== 'committing') continue;
      this.states.set(r.id, 'handed');
      this.queue.push(r);
    }
    if (this.queue.length <= this.limit) return true;
    this.dropHanded();
    return false;
  }

  /** The commit failed: whether anything was written is for a read-back to find out. */
  abandoned(rows: readonly OutboxRecord[]): void {
    for (const r of rows) this.states.delete(r.id);
  }

  /** A read-back listed these rows and publishes them itself. */
  listedByReadBack(rows: readonly OutboxRecord[]): void {
    for (const r of rows) this.states.delete(r.id);
  }

  /**
   * Takes the next handed rows in order, up to and including the first that must be acknowledged
   * before later rows go out (awaitAck), so a round ends with it as a read-back round does.
   */
  take(): OutboxRecord[] {
    const taken: OutboxRecord[] = [];
    let i = 0;
    for (; i < this.queue.length; i++) {
      const row = this.queue[i]!;
      if (this.states.get(row.id) !== 'handed') continue;
      this.states.delete(row.id);
      taken.push(row);
      if (row.awaitAck) {
        i++;
        break;
      }
    }
    this.queue = i === this.queue.length ? [] : this.queue.slice(i);
    return taken;
  }

  /**
   * Forgets every handed row (they stay in the store for a read-back). Rows whose commit is still
   * running stay noted: if the read-back misses them, they are committed after it and go out from here.
   */
  dropHanded(): void {
    for (const r of this.queue) if (this.states.get(r.id) === 'handed') this.states.delete(r.id);
    this.queue = [];
  }
}
