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
 *
 * The bounds protect one receive window, so each connection has its own (`via`): the replica's
 * own transport (`own`) and the connection that drains a dead replica's broker session (`drain`,
 * slot-sessions.ts). A drain hands over that session's whole backlog at once, much of it with
 * hints of sessions and epochs the dead replica set up; counted against the own transport's 32 it
 * dropped everything past them as 'pow' (issue 13, replicas-netns: 31–34 lost per drain). The
 * drain's budget is its whole window (DEFAULT_RECEIVE_MAXIMUM: it parks nothing, so no more than
 * that many of its envelopes are in processing at once), so it refuses none, and whatever waits
 * there holds slots of the drain's window only: made-up hints still cannot fill the own window.
 * Reloads are shared by both, so the database still sees at most one listing per interval. The
 * price: made-up hints routed to a dead replica's session slow its drain (each waits out the
 * reloads, about 3 s, in the drain's window) where they were dropped at once; what the drain has
 * not taken yet stays queued for that session, within the broker's queue limit (README "Queues
 * under a flood").
 */
import { DEFAULT_RECEIVE_MAXIMUM } from './transport-types.js';

/** Default spacing between two reloads, in milliseconds. */
export const ACCESS_RELOAD_INTERVAL_MS = 250;
/** Default bound on distinct hints waiting for a reload at once. */
export const ACCESS_RELOAD_MAX_WAITING = 8;
/** Default bound on envelopes waiting at once: half the receive window (DEFAULT_RECEIVE_MAXIMUM). */
export const ACCESS_RELOAD_MAX_WAITING_ENVELOPES = 32;
/** Default bounds of a drain connection (hints and envelopes): its whole receive window. */
export const ACCESS_RELOAD_DRAIN_MAX_WAITING = DEFAULT_RECEIVE_MAXIMUM;

/** The connection an envelope came in on: the replica's own transport, or a drain's. */
export type InboundVia = 'own' | 'drain';

/** How many envelopes may wait at once on one connection. */
export interface WaitBounds {
  /** Distinct hints waiting at once. */
  maxWaiting: number;
  /** Envelopes waiting at once, whatever their hints. */
  maxWaitingEnvelopes: number;
}

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
  /** Both bounds of drain connections; ACCESS_RELOAD_DRAIN_MAX_WAITING each by default. */
  drain?: Partial<WaitBounds>;
}

/** The envelopes waiting on one connection, within its bounds. */
class WaitBudget {
  /** Envelopes waiting, by hint; an envelope without one counts as a hint of its own. */
  private readonly waiting = new Map<string | symbol, number>();
  private envelopes = 0;

  constructor(private readonly bounds: WaitBounds) {}

  /** Takes a place for an envelope of `key`; false when a bound is reached. */
  enter(key: string | symbol): boolean {
    const ofHint = this.waiting.get(key) ?? 0;
    const hintsFull = ofHint === 0 && this.waiting.size >= this.bounds.maxWaiting;
    if (hintsFull || this.envelopes >= this.bounds.maxWaitingEnvelopes) return false;
    this.waiting.set(key, ofHint + 1);
    this.envelopes++;
    return true;
  }

  leave(key: string | symbol): void {
    this.envelopes--;
    const left = (this.waiting.get(key) ?? 1) - 1;
    if (left === 0) this.waiting.delete(key);
    else this.waiting.set(key, left);
  }
}

export class AccessRefresh {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private lastStartMs = Number.NEGATIVE_INFINITY;
  private readonly budgets: Record<InboundVia, WaitBudget>;

  constructor(private readonly deps: AccessRefreshDeps) {
    this.budgets = {
      own: new WaitBudget({
        maxWaiting: deps.maxWaiting ?? ACCESS_RELOAD_MAX_WAITING,
        maxWaitingEnvelopes: deps.maxWaitingEnvelopes ?? ACCESS_RELOAD_MAX_WAITING_ENVELOPES,
      }),
      drain: new WaitBudget({
        maxWaiting: deps.drain?.maxWaiting ?? ACCESS_RELOAD_DRAIN_MAX_WAITING,
        maxWaitingEnvelopes: deps.drain?.maxWaitingEnvelopes ?? ACCESS_RELOAD_DRAIN_MAX_WAITING,
      }),
    };
  }

  private now(): number {
    return (this.deps.nowMs ?? Date.now)();
  }

  /**
   * Resolves to true once a reload that started after this call has finished (or failed: the
   * caller re-checks either way); to false at once when the waiting bounds of `via` are reached.
   */
  async request(hint?: string, via: InboundVia = 'own'): Promise<boolean> {
    const key = hint ?? Symbol('no hint');
    const budget = this.budgets[via];
    if (!budget.enter(key)) return false;
    try {
      await this.reloadAfterNow();
      return true;
    } finally {
      budget.leave(key);
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
