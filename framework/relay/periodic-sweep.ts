/**
 * A duty's sweep run on a timer and on demand, one at a time: a sweep asked for while one runs
 * joins it. Shared by the replica duties that look for dead replicas (outbox-orphans.ts,
 * slot-sessions.ts).
 */
export class PeriodicSweep<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T> | undefined;

  /** `onError`: a timed sweep's failure, retried on the next one. */
  constructor(
    private readonly run: () => Promise<T>,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Sweeps every `everyMs` until stop(). */
  start(everyMs: number): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep().catch(this.onError), everyMs);
    this.timer.unref();
  }

  /** Stops the timer; resolves when a sweep in progress ended. */
  stop(): Promise<unknown> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return this.running ?? Promise.resolve();
  }

  /** One sweep now, or the one already running. */
  sweep(): Promise<T> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }
}
