/**
 * Retrying, inside its lane, a message whose processing failed for a reason other than its input (a
 * storage error, a store briefly gone). A group's messages (PROTOCOL.md §9) and a sender's inbox
 * messages are each processed one at a time in arrival order, in the group's or the sender's lane,
 * but every retry from outside the lane, the parking's or the broker's redelivery, joins the lane
 * behind the later messages, which the lane then has processed first. Retried here, the lane holds
 * those back meanwhile; other lanes are not held, since the transport parks a head that stalls
 * (parking.ts).
 *
 * Drops are not retried: they are returned reasons, not errors. A StaleStateError does not get here:
 * retryStale runs inside the retried work and redoes it at once on the fresh state.
 *
 * Bounded: after the last delay the error goes on as before (the parking or the broker retries,
 * later messages of the lane may then come first), so a store that stays broken does not hold a
 * lane for longer than LANE_RETRY_DELAYS_MS add up to. Stopping wakes every wait and ends
 * the retries with the error: the message is then re-run at the next start.
 */
import type { Logger } from 'pino';

/** Waits before each retry, in milliseconds: five retries within about 8 s. */
export const LANE_RETRY_DELAYS_MS: readonly number[] = [250, 500, 1000, 2000, 4000];

export class LaneRetry {
  private readonly wakes = new Set<() => void>();

  constructor(
    /** A child logger saying whose lanes these are (`lane: 'group' | 'sender'`). */
    private readonly log: Logger,
    /** False once the client stops: no further wait or retry. */
    private readonly running: () => boolean,
    private readonly delaysMs: readonly number[] = LANE_RETRY_DELAYS_MS,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    for (let retry = 0; ; retry++) {
      try {
        return await work();
      } catch (e) {
        const delayMs = this.delaysMs[retry];
        if (delayMs === undefined || !this.running()) throw e;
        this.log.warn(
          { err: (e as Error)?.message, retry: retry + 1, delayMs },
          'message failed; retrying in its lane',
        );
        await this.wait(delayMs);
        if (!this.running()) throw e;
      }
    }
  }

  /** Ends the current waits at once (their retries then see the client stopped). */
  wakeAll(): void {
    for (const wake of [...this.wakes]) wake();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakes.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakes.add(wake);
    });
  }
}
