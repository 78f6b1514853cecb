/**
 * Orders the PUBACKs of one network connection. Handlers of inbound QoS 1 messages run
 * concurrently, but MQTT 5 §4.6 requires PUBACKs in the order the PUBLISH packets arrived, so an
 * acknowledgement waits until every earlier message of the same connection has been acknowledged.
 * A message whose handler failed is never acknowledged; the owner drops the connection, and the
 * queue, so the broker redelivers it and everything after it.
 *
 * A slow handler at the head therefore holds back every later PUBACK, and the broker sends nothing
 * more once `receiveMaximum` messages are unacknowledged: one slow conversation would stall all of
 * them. With a `park` function, a head that has held finished messages back for `stallMs` is
 * offered to it; once park resolves true (the message is kept durably elsewhere) it counts as
 * acknowledged although its handler goes on.
 */
export interface StallRelief {
  /** How long the head may hold back finished messages before it is offered for parking. */
  stallMs: number;
}

interface Entry {
  messageId: number;
  done: boolean;
  arrivedAt: number;
  park: (() => Promise<boolean>) | undefined;
  /** Offered for parking already (parked, being parked, or refused): not offered again. */
  offered: boolean;
}

export class AckQueue {
  private readonly entries: Entry[] = [];
  /** Entries done but waiting for an earlier one (a stalled head holds them back). */
  private waiting = 0;
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
   * (see the class comment).
   */
  arrive(messageId: number, park?: () => Promise<boolean>): { acknowledge: () => void; failed: () => void } {
    const entry: Entry = { messageId, done: false, arrivedAt: this.now(), park, offered: false };
    this.entries.push(entry);
    return { acknowledge: () => this.complete(entry), failed: () => void (entry.offered = true) };
  }

  /** Stops the stall timer; the queue's connection is gone. */
  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private complete(entry: Entry): void {
    if (entry.done) return;
    entry.done = true;
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

  /** Arms the stall timer for the head when it holds finished messages back. */
  private watch(): void {
    if (!this.relief || this.disposed || this.timer) return;
    const head = this.entries[0];
    if (!head || head.done || head.offered || !head.park || this.waiting === 0) return;
    const delay = Math.max(0, head.arrivedAt + this.relief.stallMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.offer(head);
    }, delay);
    this.timer.unref();
  }

  private offer(head: Entry): void {
    if (this.disposed) return;
    // The head may have finished or changed meanwhile; then look at the new one.
    if (this.entries[0] !== head || head.done || head.offered || this.waiting === 0) return this.watch();
    head.offered = true;
    head.park!().then(
      (parked) => {
        if (parked) this.complete(head);
      },
      () => undefined,
    );
    // A parked head's successor may be slow too: it is looked at once the head is gone.
  }
}
