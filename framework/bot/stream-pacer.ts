/**
 * Paces the parts of one streamed reply: §8 allows at most 4 parts per second per stream, so text
 * that arrives faster is coalesced into the next part. What is still buffered when the stream ends
 * is not sent as a part: the final text carries the whole reply anyway.
 */

/** §8: at most 4 parts per second per stream. */
export const STREAM_PART_INTERVAL_MS = 250;

/** Time for the pacer; tests pass a fake one. */
export interface PacerTimers {
  now(): number;
  /** Runs `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** PacerTimers on the real clock (setTimeout). */
export const systemTimers: PacerTimers = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Sends part `seq` with `text`; parts are sent one at a time, in seq order. */
export type SendPart = (text: string, seq: number) => Promise<void>;

/** Coalesces a stream's text into parts sent at most every STREAM_PART_INTERVAL_MS, in seq order. */
export class StreamPacer {
  private buffer = '';
  private seq = 0;
  private lastStart = Number.NEGATIVE_INFINITY;
  private cancel: (() => void) | undefined;
  private chain: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | undefined;
  private finished = false;

  constructor(
    private readonly send: SendPart,
    private readonly timers: PacerTimers = systemTimers,
    private readonly intervalMs = STREAM_PART_INTERVAL_MS,
  ) {}

  /** Parts sent so far. */
  get sent(): number {
    return this.seq;
  }

  /** Adds text to the next part; throws the error of a part that could not be sent. */
  add(text: string): void {
    this.throwIfFailed();
    if (this.finished) return;
    this.buffer += text;
    this.arm();
  }

  /** Stops sending parts (the buffer is left to the final text) and waits for the one in flight. */
  async finish(): Promise<void> {
    this.finished = true;
    this.cancel?.();
    this.cancel = undefined;
    await this.chain;
    this.throwIfFailed();
  }

  private arm(): void {
    if (this.cancel || this.finished || this.buffer === '' || this.failure) return;
    const wait = Math.max(0, this.lastStart + this.intervalMs - this.timers.now());
    this.cancel = this.timers.setTimer(() => {
      this.cancel = undefined;
      this.chain = this.chain.then(() => this.flush());
    }, wait);
  }

  private async flush(): Promise<void> {
    if (this.finished || this.failure || this.buffer === '') return;
    const text = this.buffer;
    this.buffer = '';
    // Spacing counts from the start of a send: a slow send does not let the next one crowd it.
    this.lastStart = this.timers.now();
    try {
      await this.send(text, this.seq++);
    } catch (error) {
      this.failure = { error };
      return;
    }
    this.arm();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}
