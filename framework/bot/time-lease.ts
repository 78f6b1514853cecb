/**
 * The renewable part of the handler time limit (middleware/timeout.ts): a streaming handler is
 * stopped `ms` after its last part, not `ms` after it started.
 */

/** When a handler last showed progress (a stream part); the time limit counts from then. */
export class TimeLease {
  private at: number;

  constructor(private readonly now: () => number = Date.now) {
    this.at = now();
  }

  renew(): void {
    this.at = this.now();
  }

  /** ms left of a limit of `ms` counted from the last renewal. */
  left(ms: number): number {
    return this.at + ms - this.now();
  }
}
