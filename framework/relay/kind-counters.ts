/**
 * Counts per kind over a fixed list of kinds, each starting at 0: the one shape of the client's
 * drop counters, its work counters and the attachment drop counters, so that a metric exports every
 * kind from 0 and a test can read any of them before it happened.
 */
export class KindCounters<K extends string> {
  private readonly counts: Map<K, number>;

  constructor(kinds: readonly K[]) {
    this.counts = new Map(kinds.map((k) => [k, 0]));
  }

  /** Counts one more of `kind`. */
  increment(kind: K): void {
    this.counts.set(kind, this.get(kind) + 1);
  }

  /** How many of `kind` so far. */
  get(kind: K): number {
    return this.counts.get(kind) ?? 0;
  }

  /** Every kind's count now. */
  snapshot(): Record<K, number> {
    return Object.fromEntries(this.counts) as Record<K, number>;
  }

  /** All kinds together. */
  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
}
