/**
 * Publishing of committed outbox rows (ARCHITECTURE.md "One inbound message", step 7): rows go out
 * in commit order, each is deleted once the broker acknowledged it, and a row that can never go out
 * is quarantined with its dependents (outbox-quarantine.ts). The only holder of the outbox timers.
 *
 * Rows this process commits are published from memory (outbox-in-hand.ts), so a message costs no
 * read of the outbox (issue 12). The store is read back instead at start-up (rows a crash left),
 * after a reconnect, after a publish or commit failed and when the rows in hand overflowed: then
 * the store is the only complete list, and the read-back runs until it is empty before rows in
 * hand go out again, so nothing is reordered or lost.
 *
 * One of several replicas (ARCHITECTURE.md "One identity, many processes") stamps every row it
 * commits with its replica id and reads back only its own rows and rows of no replica, so replicas
 * never publish each other's live rows; a dead replica's rows are claimed by the owner of
 * DUTY.outboxOrphans (outbox-orphans.ts) and then read back here as its own.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { RowsInHand } from './outbox-in-hand.js';
import { settleFailures, withCommit, type QuarantineNote } from './outbox-quarantine.js';
import type { InboundCommit, OutboxRecord, RelayStore } from './store.js';
import type { PublishOptions } from './transport.js';

/**
 * Acknowledged rows wait this long to be deleted together, or until OUTBOX_CLEANUP_ROWS of them
 * wait. Short on purpose: what a crash leaves behind is published again after the restart (or by
 * the owner of DUTY.outboxOrphans), and the crash tests hold the store to an empty outbox half a
 * second after the last reply, even after SIGKILL. A 1 s wait saved a quiet replica most of its
 * per-reply DELETEs (issue 13: 4.76 → 3.92 statements per message at 5 msg/s) but broke that, so a
 * quiet replica still pays about one DELETE per reply; a busy one shares it.
 */
const OUTBOX_CLEANUP_DELAY_MS = 50;
/** Acknowledged rows that are deleted at once rather than after OUTBOX_CLEANUP_DELAY_MS. */
const OUTBOX_CLEANUP_ROWS = 256;
const OUTBOX_RETRY_DELAY_MS = 1000;
/** Rows listed per round, beyond those published and not yet deleted. */
const ROWS_PER_ROUND = 500;
/** Rows held in memory at most while the broker is slow; beyond it the store is read back. */
const MAX_ROWS_IN_HAND = 10_000;

export interface OutboxPublisherDeps {
  store: RelayStore;
  publish(topic: string, payload: Uint8Array, opts: PublishOptions): Promise<void>;
  clock: Clock;
  log: Logger;
  onQuarantine(q: QuarantineNote): void;
  /** Whether a failed round may be retried later (false once the client stops). */
  retryAllowed(): boolean;
  /** This replica's id, stamped on the rows it commits; absent for a single process. */
  replica?: string;
}

export class OutboxPublisher {
  private flushing: Promise<void> | undefined;
  private flushAgain: Promise<void> | undefined;
  private readonly published = new Set<string>();
  /**
   * One set per read-back listing in flight: the ids deletePublished() removed meanwhile. Such a
   * listing may have read those rows before the delete landed, while `published` no longer has them.
   */
  private readonly deletedDuringListing = new Set<Set<string>>();
  private cleanupTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly inHand = new RowsInHand(MAX_ROWS_IN_HAND);
  /** The next round reads the store back first; true at start-up, for rows a crash left behind. */
  private readBackNeeded = true;

  constructor(private readonly deps: OutboxPublisherDeps) {}

  /**
   * The store, with every commit that carries outbox rows handing them to this publisher once it
   * resolved. The commit stays the only writer; only what it wrote is kept in memory.
   */
  handingRowsOver(store: RelayStore): RelayStore {
    const replica = this.deps.replica;
    return withCommit(store, async (given: InboundCommit) => {
      const changes = replica === undefined ? given : stamped(given, replica);
      const rows = changes.outbox ?? [];
      if (rows.length === 0) return store.commit(changes);
      this.inHand.committing(rows);
      try {
        await store.commit(changes);
      } catch (e) {
        // A failed commit may still have written (a connection lost after COMMIT was sent).
        this.inHand.abandoned(rows);
        this.readBackNeeded = true;
        throw e;
      }
      if (!this.inHand.committed(rows)) this.readBackNeeded = true;
    });
  }

  /** The next round reads the outbox back from the store (after a reconnect). */
  readBack(): Promise<void> {
    this.readBackNeeded = true;
    return this.flush();
  }

  /**
   * Publishes committed outbox rows in commit order and deletes each once the broker acknowledged
   * it. One round at a time; a caller arriving mid-round waits for the next round, which sees its row.
   */
  flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain ??= this.flushing
        .catch(() => undefined)
        .then(() => {
          this.flushAgain = undefined;
          return this.flush();
        });
      return this.flushAgain;
    }
    const round = this.flushRound().finally(() => (this.flushing = undefined));
    this.flushing = round;
    round.catch((e: unknown) => {
      this.deps.log.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'outbox flush failed; retrying',
      );
      this.scheduleFlushRetry();
    });
    return round;
  }

  /** Stops the timers and deletes what the broker already acknowledged. */
  async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.cleanupTimer) clearTimeout(this.cleanupTimer);
    this.retryTimer = this.cleanupTimer = undefined;
  }

  async deletePublished(): Promise<void> {
    const ids = [...this.published];
    if (ids.length === 0) return;
    await this.deps.store.deleteOutbox(ids);
    for (const id of ids) {
      this.published.delete(id);
      for (const deleted of this.deletedDuringListing) deleted.add(id);
    }
  }

  private async flushRound(): Promise<void> {
    for (;;) {
      const rows = this.readBackNeeded ? await this.readBackRows() : this.inHand.take();
      if (rows === undefined) continue;
      if (rows.length === 0) return;
      // Started in order without awaiting each: MQTT.js writes them in call order.
      const acks = rows.map((r) =>
        this.deps.publish(r.topic, r.payload, {
          qos: 1,
          ...(r.retain ? { retain: true } : {}),
          ...(r.messageExpirySeconds !== undefined ? { messageExpirySeconds: r.messageExpirySeconds } : {}),
        }),
      );
      const results = await Promise.allSettled(acks);
      rows.forEach((r, i) => results[i]!.status === 'fulfilled' && this.published.add(r.id));
      this.scheduleOutboxCleanup();
      if (results.some((r) => r.status === 'rejected')) {
        // The rows in hand may depend on a failed row: the store says which are still to go out.
        this.readBackNeeded = true;
        this.inHand.dropHanded();
      }
      // Rows that can never go out are set aside; only the others are retried ahead of later rows.
      const retry = await settleFailures(rows, results, this.deps.store, this.deps.clock.now(), (q) => {
        this.deps.log.error(q, 'outbox row can never be published; quarantined with its dependents');
        this.deps.onQuarantine(q);
      });
      if (retry !== undefined) throw retry;
    }
  }

  /**
   * The next rows from the store in commit order, up to and including the first that must be
   * acknowledged before later rows go out (a group commit, for its Welcomes). Undefined once the
   * store holds nothing unpublished: the rows in hand are then all committed after the last listing.
   */
  private async readBackRows(): Promise<OutboxRecord[] | undefined> {
    const deleted = new Set<string>();
    this.deletedDuringListing.add(deleted);
    let listed: OutboxRecord[];
    try {
      listed = await this.deps.store.listOutbox(ROWS_PER_ROUND + this.published.size, this.deps.replica);
    } finally {
      this.deletedDuringListing.delete(deleted);
    }
    const pending = listed.filter((r) => !this.published.has(r.id) && !deleted.has(r.id));
    this.inHand.listedByReadBack(pending);
    if (pending.length === 0) {
      this.readBackNeeded = false;
      return undefined;
    }
    const barrier = pending.findIndex((r) => r.awaitAck);
    return barrier === -1 ? pending : pending.slice(0, barrier + 1);
  }

  /**
   * Acknowledged rows are deleted in batches rather than one transaction per message: a row that a
   * crash leaves behind is published again, and the receiver's replay cache drops the copy.
   */
  private scheduleOutboxCleanup(): void {
    if (this.published.size === 0) return;
    if (this.published.size >= OUTBOX_CLEANUP_ROWS && this.cleanupTimer) {
      clearTimeout(this.cleanupTimer);
      this.cleanupTimer = undefined;
      void this.deletePublished().catch((e) =>
        this.deps.log.warn({ err: (e as Error).message }, 'outbox cleanup failed'),
      );
      return;
    }
    if (this.cleanupTimer) return;
    this.cleanupTimer = setTimeout(() => {
      this.cleanupTimer = undefined;
      void this.deletePublished().catch((e) =>
        this.deps.log.warn({ err: (e as Error).message }, 'outbox cleanup failed'),
      );
    }, OUTBOX_CLEANUP_DELAY_MS);
    this.cleanupTimer.unref();
  }

  private scheduleFlushRetry(): void {
    if (this.retryTimer || !this.deps.retryAllowed()) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush().catch(() => undefined);
    }, OUTBOX_RETRY_DELAY_MS);
    this.retryTimer.unref();
  }
}

/** The commit with its outbox rows marked as committed by `replica`. */
function stamped(changes: InboundCommit, replica: string): InboundCommit {
  if (!changes.outbox?.length) return changes;
  return { ...changes, outbox: changes.outbox.map((r) => (r.replica === undefined ? { ...r, replica } : r)) };
}
