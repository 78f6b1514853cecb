/**
 * Parking of inbound messages that stall flow control (PROTOCOL.md §10: no input may block other
 * conversations). PUBACKs must leave in arrival order (MQTT 5 §4.6) and the broker stops sending
 * at `receiveMaximum` unacknowledged messages, so one slow handler at the head would hold every
 * conversation back. The transport offers such a head here: its raw MQTT message (topic, bytes,
 * arrival) is written to the store, and only then is it acknowledged; its processing goes on.
 *
 * Crash safety is the outbox's rule turned around. Before the write, nothing was acknowledged and
 * the broker redelivers. After it, the row is the message's durable copy: it is deleted once the
 * message was processed (committed or dropped); a crash before that re-runs it at start-up ahead
 * of new traffic, where a message that was committed already is recognised as a replay or
 * duplicate by the same records that recognise a broker redelivery, so nothing is lost and nothing
 * is sent twice. A message that is never parked (the fast path) costs no extra write.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { systemRandom, type Random } from './random.js';
import type { ParkedInboundRecord, RelayStore } from './store.js';
import type { InboundMessage } from './transport-types.js';
import type { InboundParking, ParkTicket } from './transport-parking.js';

export const DEFAULT_PARK_AFTER_MS = 300;
/** Parked messages in processing at once; past it a stalled head waits as it did without parking. */
export const DEFAULT_MAX_PARKED = 256;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 60_000;

export interface ParkingOptions {
  store: Pick<RelayStore, 'parkInbound' | 'listParkedInbound' | 'deleteParkedInbound'>;
  clock: Clock;
  /** Ids of the parked rows; node:crypto's by default. */
  random?: Random;
  log: Logger;
  /** Processes a message as if it had just arrived; rejects when it must be tried again. */
  process: (message: InboundMessage) => Promise<void>;
  stallMs?: number;
  maxParked?: number;
}

export class Parking implements InboundParking {
  readonly stallMs: number;
  private readonly maxParked: number;
  /** Parked messages not yet processed (running, or waiting for a retry). */
  private held = 0;
  private readonly retries = new Set<NodeJS.Timeout>();
  private readonly deletes = new Set<Promise<void>>();
  private stopped = false;
  /** Messages parked since start (for tests and metrics). */
  parkedCount = 0;

  constructor(private readonly opts: ParkingOptions) {
    this.stallMs = opts.stallMs ?? DEFAULT_PARK_AFTER_MS;
    this.maxParked = opts.maxParked ?? DEFAULT_MAX_PARKED;
  }

  async park(message: InboundMessage): Promise<ParkTicket | undefined> {
    if (this.stopped || this.held >= this.maxParked) return undefined;
    this.held++;
    const record: ParkedInboundRecord = {
      id: (this.opts.random ?? systemRandom).uuid(),
      topic: message.topic,
      payload: message.payload,
      arrivedAt: this.opts.clock.now(),
    };
    try {
      await this.opts.store.parkInbound(record);
    } catch (e) {
      this.held--;
      this.opts.log.warn({ err: (e as Error).message }, 'parking an inbound message failed');
      return undefined;
    }
    this.parkedCount++;
    this.opts.log.debug({ topic: message.topic }, 'parked a stalled inbound message');
    return {
      settle: (outcome) => {
        if (outcome === 'processed') this.done(record.id);
        else this.retryLater(record, RETRY_FIRST_MS);
      },
    };
  }

  /**
   * Re-runs what an earlier run parked and did not finish, in arrival order. Each is started before
   * this resolves, so they join their conversations' lanes ahead of any message arriving after it;
   * they finish in the background.
   */
  async resume(): Promise<number> {
    const rows = await this.opts.store.listParkedInbound(this.maxParked);
    for (const row of rows) {
      this.held++;
      this.run(row, RETRY_FIRST_MS);
    }
    return rows.length;
  }

  /** Stops retries and waits for pending deletions; parked rows left are re-run at next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    await Promise.allSettled([...this.deletes]);
  }

  private run(record: ParkedInboundRecord, retryMs: number): void {
    const message: InboundMessage = {
      topic: record.topic,
      payload: record.payload,
      properties: {},
      dup: true,
      retain: false,
      qos: 1,
    };
    this.opts.process(message).then(
      () => this.done(record.id),
      (e: unknown) => {
        this.opts.log.warn({ err: (e as Error)?.message }, 'a parked message failed; retrying');
        this.retryLater(record, Math.min(retryMs * 2, RETRY_MAX_MS));
      },
    );
  }

  private retryLater(record: ParkedInboundRecord, delayMs: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      if (!this.stopped) this.run(record, delayMs);
    }, delayMs);
    timer.unref();
    this.retries.add(timer);
  }

  /**
   * Processed: the row goes. Should the delete fail (or a crash come first), the next start re-runs
   * the message and the replay cache or dedupe record drops it.
   */
  private done(id: string): void {
    this.held--;
    const deletion = this.opts.store
      .deleteParkedInbound(id)
      .catch((e: unknown) => this.opts.log.warn({ err: (e as Error).message }, 'unparking failed'))
      .finally(() => this.deletes.delete(deletion));
    this.deletes.add(deletion);
  }
}
