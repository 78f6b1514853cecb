import { StaleStateError } from './errors.js';

/**
 * Retrying work whose conversation another process (or a stale cache) moved on between our read
 * and our commit (ARCHITECTURE.md "One identity, many processes"): nothing was written, so the
 * work is redone on the state the store now holds.
 *
 * There is no bound on the number of retries. Each StaleStateError means another writer committed
 * that conversation, so the replicas as a whole always make progress; giving up instead threw the
 * message to the transport, which dropped the connection, got everything unacknowledged back, and
 * left the slow replica further behind (issue 13). The retries end at once on any other error (a
 * store that is gone, a client that stops), which is what an unhealthy replica meets.
 *
 * Why not a row lock (SELECT … FOR UPDATE) instead: it would hold a pooled connection and the
 * conversation's row across the MLS work and the bot's handler, which may wait seconds on other
 * services, and cost a locking read per message, where the state cache reads nothing; losing a race
 * happens only while two replicas work on one conversation at once. So the first retries follow at
 * once (one other writer in between is the usual case, and the fresh read then wins), and later
 * ones wait a random time up to a doubling bound (full jitter, capped): two replicas that keep
 * colliding fall out of step instead of retrying together.
 */
export interface RetryStaleOptions {
  /** Gives up (rethrows the StaleStateError) after this many attempts; unbounded by default. */
  attempts?: number;
  /** A number in [0, 1); Math.random by default (tests substitute it). */
  random?: () => number;
  /** Waits ms milliseconds; a timer by default (tests substitute it). */
  sleep?: (ms: number) => Promise<void>;
}

/** Retries that follow at once, before the delays begin. */
export const STALE_RETRY_IMMEDIATE = 2;
/** The bound of the first delay, in milliseconds; it doubles with each later retry. */
export const STALE_RETRY_BASE_MS = 5;
/** No delay between two retries is longer than this, in milliseconds. */
export const STALE_RETRY_MAX_MS = 200;

export async function retryStale<T>(work: () => Promise<T>, opts: RetryStaleOptions = {}): Promise<T> {
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? delay;
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (e) {
      if (!(e instanceof StaleStateError)) throw e;
      if (opts.attempts !== undefined && i >= opts.attempts) throw e;
      if (i > STALE_RETRY_IMMEDIATE) {
        const exponent = Math.min(i - STALE_RETRY_IMMEDIATE - 1, 16);
        const bound = Math.min(STALE_RETRY_MAX_MS, STALE_RETRY_BASE_MS * 2 ** exponent);
        await sleep(Math.floor(random() * bound));
      }
    }
  }
}

function delay(ms: number): Promise<void> {
  if (ms <= 0) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, ms));
}
