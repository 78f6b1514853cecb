/**
 * The order of inbox envelopes that wait outside the arrival chain (inbound.ts): one whose access
 * hint is unknown here waits for earlier key changes and access reloads, and must not make every
 * other conversation wait with it. What the arrival order is for (PROTOCOL.md §5, §7: a 1:1
 * session's messages in order, a commit before the next epoch's messages) is kept by two rules:
 *
 * - Hint places: the sender of a waiting envelope is unknown until its tag verifies, but an
 *   envelope with the same hint is of the same session and epoch (the hint is an HMAC under the
 *   session's access key), so it takes the next place behind it, even if it verifies at once.
 * - Re-check rounds: waiting envelopes are checked again in rounds, in arrival order, and those a
 *   round explains go on in that order: one session's envelopes across an hour boundary carry two
 *   hints, and the reload that explains one explains the other.
 */
import type { EnvelopeCheck } from './inbound-envelope.js';

interface HintLine {
  tail: Promise<void>;
  count: number;
}

/** Per hint, the waiting envelopes and those behind them, first come first served. */
export class HintPlaces {
  private readonly lines = new Map<string, HintLine>();

  /** True while an envelope of this hint waits or goes on behind one that waited. */
  has(hint: string): boolean {
    return this.lines.has(hint);
  }

  /**
   * Takes the next place of `hint`: `behind` settles once every earlier place was left (undefined
   * when there is none); `leave` lets the next one go on, and is safe to call more than once.
   */
  enter(hint: string): { behind: Promise<void> | undefined; leave(): void } {
    const line = this.lines.get(hint);
    const behind = line?.tail;
    let left!: () => void;
    const mine = new Promise<void>((r) => (left = r));
    const tail = behind ? behind.then(() => mine) : mine;
    const current = line ?? { tail, count: 0 };
    current.tail = tail;
    current.count++;
    this.lines.set(hint, current);
    let done = false;
    return {
      behind,
      leave: () => {
        if (done) return;
        done = true;
        left();
        if (--current.count === 0 && this.lines.get(hint) === current) this.lines.delete(hint);
      },
    };
  }
}

interface Pending {
  seq: number;
  payload: Uint8Array;
  resolve(c: EnvelopeCheck): void;
  reject(e: unknown): void;
}

/**
 * Checks waiting envelopes again, in rounds: every envelope asking before a round starts is checked
 * in that round, in arrival order (`seq`), and all of a round's answers are given at once, in that
 * order, so the envelopes go on in it.
 */
export class RecheckRounds {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(private readonly check: (payload: Uint8Array) => Promise<EnvelopeCheck>) {}

  recheck(seq: number, payload: Uint8Array): Promise<EnvelopeCheck> {
    return new Promise<EnvelopeCheck>((resolve, reject) => {
      this.pending.push({ seq, payload, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.pending.length === 0) return;
    this.scheduled = true;
    // After the current microtasks: every envelope that one reload (or one key change) let go
    // asks before the round starts.
    setImmediate(() => void this.round());
  }

  private async round(): Promise<void> {
    const batch = this.pending.splice(0).sort((a, b) => a.seq - b.seq);
    const answers: Array<{ ok: true; value: EnvelopeCheck } | { ok: false; error: unknown }> = [];
    for (const p of batch) {
      try {
        answers.push({ ok: true, value: await this.check(p.payload) });
      } catch (error) {
        answers.push({ ok: false, error });
      }
    }
    batch.forEach((p, i) => {
      const a = answers[i]!;
      if (a.ok) p.resolve(a.value);
      else p.reject(a.error);
    });
    this.scheduled = false;
    this.schedule();
  }
}
