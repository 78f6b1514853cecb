/**
 * Reads of the same kind, coalesced (issue 12): those asked for while an earlier statement of that
 * kind is in flight go to the database together, as ONE statement, instead of one round trip each.
 * Like the commit batcher (commit-batch.ts) it waits for nothing but the statement before it: with
 * nothing in flight a read goes at once, as its own statement (no timer, no added latency when
 * idle); under load the reads that queued meanwhile, at most maxBatch of them, go next.
 *
 * Reads need no transaction: each statement sees one snapshot, and a read that waited behind
 * another only reads later, as a slower one would. When a shared statement fails, each of its
 * reads runs again on its own, so an error reaches only the callers whose own statement fails.
 */

/** How one kind of read runs: on its own, and several at once (results in the order asked). */
export interface CoalescedRead<Q, R> {
  alone(query: Q): Promise<R>;
  together(queries: readonly Q[]): Promise<R[]>;
  /** Whether `query` may share a statement (default: all may); the others run on their own. */
  shareable?(query: Q): boolean;
}

interface Waiting<Q, R> {
  query: Q;
  resolve(result: R): void;
  reject(e: unknown): void;
}

/** One per store and kind of read: the queue and the one statement in flight. */
export class Coalescer<Q, R> {
  private waiting: Array<Waiting<Q, R>> = [];
  private reading = false;

  constructor(
    private readonly read: CoalescedRead<Q, R>,
    private readonly maxBatch: number,
  ) {}

  /** What `read.alone(query)` returns, read alone or together with others. */
  get(query: Q): Promise<R> {
    if (this.read.shareable && !this.read.shareable(query)) return this.read.alone(query);
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ query, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.reading || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.reading = true;
    void this.run(batch).finally(() => {
      this.reading = false;
      this.next();
    });
  }

  private async run(batch: Array<Waiting<Q, R>>): Promise<void> {
    if (batch.length === 1) return this.runAlone(batch[0]!);
    let results: R[];
    try {
      results = await this.read.together(batch.map((w) => w.query));
    } catch {
      await Promise.all(batch.map((w) => this.runAlone(w)));
      return;
    }
    batch.forEach((w, i) => w.resolve(results[i]!));
  }

  private runAlone(w: Waiting<Q, R>): Promise<void> {
    return this.read.alone(w.query).then(w.resolve, w.reject);
  }
}
