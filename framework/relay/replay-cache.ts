/**
 * The in-memory half of the replay cache (PROTOCOL.md §5), checked before proof of work and before
 * the store: a flood of copies of one envelope must cost a map lookup each, not a database read.
 *
 * An entry is claimed as soon as the envelope's PoW or access tag verified, and settled when the
 * message reached a final outcome (committed, or dropped for any reason): from then on every copy
 * is a replay. The durable half is written only with the commit of a processed message, never here:
 * if the process dies before that commit, the broker redelivers and the (empty) memory must let the
 * redelivery through. For the same reason a claim whose processing failed without a decision (a
 * store error, a refusal for overload: the message stays unacknowledged and comes back) is
 * released, and a copy arriving while the first is still in flight waits for its outcome.
 */
import { createHash } from 'node:crypto';
import type { UnixSeconds } from './brand.js';

/** Default bound: each entry required valid PoW or a session's access tag to create. */
export const DEFAULT_REPLAY_CACHE_ENTRIES = 50_000;

export type ReplayLookup = 'seen' | 'unseen' | { inFlight: Promise<void> };

export interface ReplayClaim {
  /** `true`: a final outcome, keep the entry until it expires; `false`: forget it. First call wins. */
  settle(keep: boolean): void;
}

interface Entry {
  expiresAt: UnixSeconds;
  /** Present while the envelope is being processed; resolved when it settles. */
  inFlight?: { done: Promise<void>; resolve: () => void };
}

/** The replay-cache key: SHA-256(enc || ciphertext), the bytes PoW and access tag bind. */
export function replayDigest(enc: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  // Node's native hash: a 256 KiB ciphertext costs a fraction of a millisecond, not several.
  return new Uint8Array(createHash('sha256').update(enc).update(ciphertext).digest());
}

export class ReplayCache {
  /** Insertion order is eviction order. */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries = DEFAULT_REPLAY_CACHE_ENTRIES) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(key: string, now: UnixSeconds): ReplayLookup {
    const entry = this.entries.get(key);
    if (!entry) return 'unseen';
    if (entry.inFlight) return { inFlight: entry.inFlight.done };
    if (entry.expiresAt < now) {
      this.entries.delete(key);
      return 'unseen';
    }
    return 'seen';
  }

  /** Records a settled entry (the store already knew the envelope). */
  record(key: string, expiresAt: UnixSeconds): void {
    this.entries.delete(key);
    this.entries.set(key, { expiresAt });
    this.evict();
  }

  /** Marks `key` in flight; the caller checked `lookup` returned 'unseen' without yielding since. */
  claim(key: string, expiresAt: UnixSeconds): ReplayClaim {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const entry: Entry = { expiresAt, inFlight: { done, resolve } };
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.evict();
    let settled = false;
    return {
      settle: (keep) => {
        if (settled) return;
        settled = true;
        delete entry.inFlight;
        if (!keep && this.entries.get(key) === entry) this.entries.delete(key);
        resolve();
      },
    };
  }

  /**
   * Over the bound, the oldest settled entries go first; their envelopes are then checked against the
   * store again. Entries in flight stay (the transport's receive maximum bounds them).
   */
  private evict(): void {
    if (this.entries.size <= this.maxEntries) return;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries) return;
      if (!entry.inFlight) this.entries.delete(key);
    }
  }
}
