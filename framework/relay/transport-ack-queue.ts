/**
 * Orders the PUBACKs of one network connection. Handlers of inbound QoS 1 messages run
 * concurrently, but MQTT 5 §4.6 requires PUBACKs in the order the PUBLISH packets arrived, so an
 * acknowledgement waits until every earlier message of the same connection has been acknowledged.
 * A message whose handler failed is never acknowledged; the owner drops the connection, and the
 * queue, so the broker redelivers it and everything after it.
 *
 * A slow handler at the head therefore holds back every later PUBACK, and the broker sends nothing
 * more once `receiveMaximum` messages are unacknowledged: one slow conversation would stall all of
 * them. With a `park` function, a head that blocks the window and is an outlier
 * (transport-stall-rule.ts) is offered to it; once park resolves true (the message is kept durably
 * elsewhere) it counts as acknowledged although its handler goes on.
 */
import { RecentDurations, stallVerdict } from './transport-stall-rule.js';

/** When a stalled head may be offered for parking (transport-stall-rule.ts). */
export interface StallRelief {
  /** The least time a head holds back finished messages before it may be offered for parking. */
  stallMs: number;
  /** The Receive Maximum announced to the broker: how many unacknowledged messages fill the window. */
  receiveMaximum: number;
}

interface Entry {
  messageId: number;
  done: boolean;
  arrivedAt: number;
  park: (() => Promise<boolean>) | undefined;
  /** Offered for parking already (parked, being parked, or refused): not offered again. */
  offered: boolean;
}

/** The PUBACK order of one connection, with optional relief for a stalled head (see the module comment). */
export class AckQueue {
  private readonly entries: Entry[] = [];
  /** Entries done but waiting for an earlier one (a stalled head holds them back). */
  private waiting = 0;
  /** Handler times of messages that finished on their own (parked ones excluded). */
  private readonly durations = new RecentDurations();
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly sendAck: (messageId: number) => void,
    private readonly relief?: StallRelief,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Registers an arrival; call `acknowledge` once its handler succeeded, `failed` once it failed
   * (then it is never parked). `park`, when given, may be called if this message stalls the queue
   * (see the module comment).
   */
  arrive(messageId: number, park?: () => Promise<boolean>): { acknowledge: () => void; failed: () => void } {
    const entry: Entry = { messageId, done: false, arrivedAt: this.now(), park, offered: false };
    this.entries.push(entry);
    // A fuller window may make a stalled head worth parking.
    this.watch();
    return { acknowledge: () => this.complete(entry, false), failed: () => void (entry.offered = true) };
  }

  /** Stops the stall timer; the queue's connection is gone. */
  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private complete(entry: Entry, parked: boolean): void {
    if (entry.done) return;
    entry.done = true;
    if (!parked) this.durations.add(this.now() - entry.arrivedAt);
    this.waiting++;
    this.flush();
    this.watch();
  }

  private flush(): void {
    while (this.entries[0]?.done) {
      const head = this.entries.shift()!;
      this.waiting--;
      this.sendAck(head.messageId);
    }
  }

  /** Offers the head for parking when the stall rule says so, or arms a timer to look again. */
  private watch(): void {
    if (!this.relief || this.disposed || this.timer) return;
    const head = this.entries[0];
    if (!head || head.done || head.offered || !head.park) return;
    const verdict = stallVerdict({
      headAgeMs: this.now() - head.arrivedAt,
      unacknowledged: this.entries.length,
      heldBack: this.waiting,
      receiveMaximum: this.relief.receiveMaximum,
      typicalMs: this.waiting > 0 ? this.durations.median() : undefined,
      stallMs: this.relief.stallMs,
    });
    if (verdict.park) return this.offer(head);
    if (verdict.recheckInMs === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // The head may have finished or changed meanwhile; the new one is judged afresh.
      if (!this.disposed) this.watch();
    }, verdict.recheckInMs);
    this.timer.unref();
  }

  private offer(head: Entry): void {
    head.offered = true;
    head.park!().then(
      (parked) => {
        if (parked) this.complete(head, true);
      },
      () => undefined,
    );
    // A parked head's successor may be slow too: it is looked at once the head is gone.
  }
}
