/**
 * Publishing of committed outbox rows (ARCHITECTURE.md "One inbound message", step 7): rows go out
 * in commit order, each is deleted once the broker acknowledged it, and a row that can never go out
 * is quarantined with its dependents (outbox-quarantine.ts). The only holder of the outbox timers.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { settleFailures, type QuarantineNote } from './outbox-quarantine.js';
import type { RelayStore } from './store.js';
import type { PublishOptions } from './transport.js';

const OUTBOX_CLEANUP_DELAY_MS = 50;
const OUTBOX_RETRY_DELAY_MS = 1000;
/** Rows listed per round, beyond those published and not yet deleted. */
const ROWS_PER_ROUND = 500;

export interface OutboxPublisherDeps {
  store: RelayStore;
  publish(topic: string, payload: Uint8Array, opts: PublishOptions): Promise<void>;
  clock: Clock;
  log: Logger;
  onQuarantine(q: QuarantineNote): void;
  /** Whether a failed round may be retried later (false once the client stops). */
  retryAllowed(): boolean;
}

export class OutboxPublisher {
  private flushing: Promise<void> | undefined;
  private flushAgain: Promise<void> | undefined;
  private readonly published = new Set<string>();
  private cleanupTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: OutboxPublisherDeps) {}

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
    for (const id of ids) this.published.delete(id);
  }

  private async flushRound(): Promise<void> {
    for (;;) {
      const listed = await this.deps.store.listOutbox(ROWS_PER_ROUND + this.published.size);
      const pending = listed.filter((r) => !this.published.has(r.id));
      if (pending.length === 0) return;
      // A row marked awaitAck (a group commit) must be acknowledged before later rows (its
      // Welcomes) go out, so a round ends with it.
      const barrier = pending.findIndex((r) => r.awaitAck);
      const rows = barrier === -1 ? pending : pending.slice(0, barrier + 1);
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
      // Rows that can never go out are set aside; only the others are retried ahead of later rows.
      const retry = await settleFailures(rows, results, this.deps.store, this.deps.clock.now(), (q) => {
        this.deps.log.error(q, 'outbox row can never be published; quarantined with its dependents');
        this.deps.onQuarantine(q);
      });
      if (retry !== undefined) throw retry;
    }
  }

  /**
   * Acknowledged rows are deleted in batches rather than one transaction per message: a row that a
   * crash leaves behind is published again, and the receiver's replay cache drops the copy.
   */
  private scheduleOutboxCleanup(): void {
    if (this.cleanupTimer || this.published.size === 0) return;
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
