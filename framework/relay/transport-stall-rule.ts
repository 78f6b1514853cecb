/**
 * When a stalled head of the ack queue is worth parking (issue #12). Parking costs two store
 * statements, and it only helps when the head actually blocks the broker: the broker sends nothing
 * more once `receiveMaximum` messages are unacknowledged, so a head holding PUBACKs back in a window
 * that still has room blocks nobody. And when every handler is slow alike (the bot is behind), the
 * head is merely the oldest of many equally slow messages: parking it adds writes exactly when the
 * bot can least afford them and frees a slot the next equally slow message fills. So a head is
 * parked only when the window is near full and the head is an outlier: slower than `stallMs` and
 * than OUTLIER_FACTOR times the typical handler time of the messages finished recently.
 */

/** The window counts as near full from this share of `receiveMaximum` on. */
export const NEAR_FULL_SHARE = 7 / 8;
/** A head is an outlier once it is this many times slower than the typical recent handler. */
export const OUTLIER_FACTOR = 4;

/** What the ack queue knows about its head when it decides. */
export interface StallSnapshot {
  /** Milliseconds since the head arrived. */
  headAgeMs: number;
  /** Messages of this connection not yet acknowledged, the head included. */
  unacknowledged: number;
  /** Finished messages the head holds back. */
  heldBack: number;
  /** The Receive Maximum we announced: the broker stops sending at this many unacknowledged. */
  receiveMaximum: number;
  /** Median handler time of recently finished messages; undefined before any finished. */
  typicalMs: number | undefined;
  /** The least a head must have taken before it may be parked. */
  stallMs: number;
}

/**
 * Park now; or not yet, then when to look again (undefined: only once something arrives or
 * finishes, which is what can change the answer).
 */
export type StallVerdict = { park: true } | { park: false; recheckInMs: number | undefined };

/** Unacknowledged messages from which the window counts as near full (at least 1). */
export function nearFullWindow(receiveMaximum: number): number {
  return Math.max(1, Math.ceil(receiveMaximum * NEAR_FULL_SHARE));
}

/** How long the head must have taken before it counts as an outlier. */
export function outlierAfterMs(stallMs: number, typicalMs: number | undefined): number {
  return Math.max(stallMs, OUTLIER_FACTOR * (typicalMs ?? 0));
}

/** Decides whether the head of the ack queue should be offered for parking (see the module comment). */
export function stallVerdict(s: StallSnapshot): StallVerdict {
  // Parking would free nothing, or the broker still has room to send: look again on the next event.
  if (s.heldBack === 0 || s.unacknowledged < nearFullWindow(s.receiveMaximum)) {
    return { park: false, recheckInMs: undefined };
  }
  const threshold = outlierAfterMs(s.stallMs, s.typicalMs);
  if (s.headAgeMs >= threshold) return { park: true };
  return { park: false, recheckInMs: threshold - s.headAgeMs };
}

/** The last `capacity` handler times, for the typical (median) one. */
export class RecentDurations {
  private readonly samples: number[] = [];
  private next = 0;

  constructor(private readonly capacity = 64) {}

  add(ms: number): void {
    if (this.samples.length < this.capacity) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.capacity;
  }

  /** The median of the recorded times; undefined before the first. */
  median(): number | undefined {
    if (this.samples.length === 0) return undefined;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  }
}
