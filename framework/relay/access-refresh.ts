/**
 * Reloading the access index from the store, for replicas of one identity (ARCHITECTURE.md "One
 * identity, many processes"). A replica learns of the sessions and epochs it processed itself; one
 * that another replica set up (a first contact, a commit) reaches it only through the store. An
 * envelope whose hint matches nothing known here asks for a reload that starts after it arrived:
 * the other replica committed before its Welcome or commit left, so such a reload sees the keys.
 *
 * Reloads never overlap and start at least `minIntervalMs` apart, so made-up hints (free to send)
 * cost the database at most one listing per interval, however many arrive. Waiting envelopes hold
 * slots of the broker's receive window, so they are bounded twice: at most `maxWaiting` distinct
 * hints wait at a time (a flood of made-up hints cannot fill the window), and at most
 * `maxWaitingEnvelopes` envelopes in all. Envelopes of a hint already waiting join it: a peer's
 * burst right after its first contact on another replica carries one hint, and counting each of
 * its envelopes as a hint of its own dropped the later ones as 'pow'.
 */
/** Default spacing between two reloads, in milliseconds. */
export const ACCESS_RELOAD_INTERVAL_MS = 250;
/** Default bound on distinct hints waiting for a reload at once. */
export const ACCESS_RELOAD_MAX_WAITING = 8;
/** Default bound on envelopes waiting at once: half the receive window (DEFAULT_RECEIVE_MAXIMUM). */
export const ACCESS_RELOAD_MAX_WAITING_ENVELOPES = 32;

export interface AccessRefreshDeps {
  /** Reads every session's access keys from the store into the index. */
  reload(): Promise<void>;
  /** Milliseconds on a monotonic scale; Date.now by default (tests substitute it). */
  nowMs?: () => number;
  minIntervalMs?: number;
  /** Distinct hints waiting at once. */
  maxWaiting?: number;
  /** Envelopes waiting at once, whatever their hints. */
  maxWaitingEnvelopes?: number;
}

export class AccessRefresh {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private lastStartMs = Number.NEGATIVE_INFINITY;
  /** Envelopes waiting, by hint; an envelope without one counts as a hint of its own. */
  private readonly waiting = new Map<string | symbol, number>();
  private waitingEnvelopes = 0;

  constructor(private readonly deps: AccessRefreshDeps) {}

  private now(): number {
    return (this.deps.nowMs ?? Date.now)();
  }

  /**
   * Resolves to true once a reload that started after this call has finished (or failed: the
   * caller re-checks either way); to false at once when the waiting bounds are reached.
   */
  async request(hint?: string): Promise<boolean> {
    const key = hint ?? Symbol('no hint');
    const ofHint = this.waiting.get(key) ?? 0;
    const hintsFull =
      ofHint === 0 && this.waiting.size >= (this.deps.maxWaiting ?? ACCESS_RELOAD_MAX_WAITING);
    const envelopesFull =
      this.waitingEnvelopes >= (this.deps.maxWaitingEnvelopes ?? ACCESS_RELOAD_MAX_WAITING_ENVELOPES);
    if (hintsFull || envelopesFull) return false;
    this.waiting.set(key, ofHint + 1);
    this.waitingEnvelopes++;
    try {
      await this.reloadAfterNow();
      return true;
    } finally {
      this.waitingEnvelopes--;
      const left = (this.waiting.get(key) ?? 1) - 1;
      if (left === 0) this.waiting.delete(key);
      else this.waiting.set(key, left);
    }
  }

  private reloadAfterNow(): Promise<void> {
    if (!this.running) return this.start();
    // The reload under way may have listed the store before the caller's session was there.
    this.next ??= this.running.then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  private start(): Promise<void> {
    const interval = this.deps.minIntervalMs ?? ACCESS_RELOAD_INTERVAL_MS;
    const waitMs = Math.max(0, this.lastStartMs + interval - this.now());
    const run = delay(waitMs)
      .then(() => {
        this.lastStartMs = this.now();
        return this.deps.reload();
      })
      .catch(() => undefined)
      .finally(() => {
        if (this.running === run) this.running = undefined;
      });
    this.running = run;
    return run;
  }
}

function delay(ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
