/**
 * The stall rule (framework/relay/transport-stall-rule.ts, issue #12): a stalled head is parked only
 * when the unacknowledged window is near `receiveMaximum` and the head is an outlier, never when
 * every handler is slow alike. The pure decision first, then the ack queue driving it on a manual
 * clock, so the timings are exact and nothing waits on the wall clock but the queue's own timers.
 */
import { AckQueue } from '../../framework/relay/transport-ack-queue.js';
import {
  nearFullWindow,
  OUTLIER_FACTOR,
  RecentDurations,
  stallVerdict,
  type StallSnapshot,
} from '../../framework/relay/transport-stall-rule.js';

const blocking: StallSnapshot = {
  headAgeMs: 400,
  unacknowledged: 64,
  heldBack: 63,
  receiveMaximum: 64,
  typicalMs: 5,
  stallMs: 300,
};

describe('stallVerdict', () => {
  test('a slow head in a full window, far slower than the others, is parked', () => {
    expect(stallVerdict(blocking)).toEqual({ park: true });
  });

  test('a window with room is left alone, however slow the head: the broker still sends', () => {
    expect(nearFullWindow(64)).toBe(56);
    expect(stallVerdict({ ...blocking, unacknowledged: 55, heldBack: 54, headAgeMs: 60_000 })).toEqual({
      park: false,
      recheckInMs: undefined,
    });
    expect(stallVerdict({ ...blocking, unacknowledged: 56, heldBack: 55 })).toEqual({ park: true });
  });

  test('nothing finished behind the head: parking would free nothing', () => {
    expect(stallVerdict({ ...blocking, heldBack: 0, headAgeMs: 60_000 })).toEqual({
      park: false,
      recheckInMs: undefined,
    });
  });

  test('every handler slow alike (the bot is behind): the head is no outlier and is not parked', () => {
    // Saturation: handlers take ~250 ms each; the head is the oldest at 400 ms, under 4 × 250.
    const behind = { ...blocking, typicalMs: 250, headAgeMs: 400 };
    expect(stallVerdict(behind)).toEqual({ park: false, recheckInMs: OUTLIER_FACTOR * 250 - 400 });
    // Should it really be stuck, it is parked once it is an outlier after all.
    expect(stallVerdict({ ...behind, headAgeMs: OUTLIER_FACTOR * 250 })).toEqual({ park: true });
  });

  test('stallMs stays the floor when the others are very fast', () => {
    expect(stallVerdict({ ...blocking, typicalMs: 1, headAgeMs: 120 })).toEqual({
      park: false,
      recheckInMs: 180,
    });
    expect(nearFullWindow(1)).toBe(1);
    expect(nearFullWindow(2)).toBe(2);
  });
});

describe('RecentDurations', () => {
  test('median of the last samples only', () => {
    const d = new RecentDurations(3);
    expect(d.median()).toBeUndefined();
    d.add(10);
    d.add(30);
    expect(d.median()).toBe(20);
    d.add(20);
    d.add(1000); // evicts 10
    expect(d.median()).toBe(30);
  });
});

describe('AckQueue with the stall rule', () => {
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

  /** A queue on a manual clock; `advance` moves it and lets the queue's timers (real, short) fire. */
  function queue(receiveMaximum: number, stallMs: number) {
    let now = 0;
    const acks: number[] = [];
    const offered: number[] = [];
    const q = new AckQueue(
      (id) => acks.push(id),
      { stallMs, receiveMaximum },
      () => now,
    );
    const arrive = (id: number) => q.arrive(id, async () => (offered.push(id), true));
    const advance = async (ms: number) => {
      now += ms;
      // A recheck timer was armed for a delay in manual-clock ms; let real time pass as far.
      await sleep(ms + 5);
    };
    return { q, acks, offered, arrive, advance };
  }

  test('a window of equally slow handlers parks nothing; one outlier among fast ones is parked', async () => {
    const stallMs = 10;
    const slowAlike = queue(4, stallMs);
    // Four handlers that each take ~20 ms, the head a little longer: the bot is behind, not stuck.
    const a = slowAlike.arrive(1);
    const others = [2, 3, 4].map((id) => slowAlike.arrive(id));
    await slowAlike.advance(20);
    for (const o of others) o.acknowledge();
    await slowAlike.advance(30); // head at 50 ms < 4 × 20 ms typical
    expect(slowAlike.offered).toEqual([]);
    a.acknowledge();
    expect(slowAlike.acks).toEqual([1, 2, 3, 4]);
    slowAlike.q.dispose();

    const outlier = queue(4, stallMs);
    outlier.arrive(1); // never finishes
    const fast = [2, 3, 4].map((id) => outlier.arrive(id));
    await outlier.advance(1);
    for (const f of fast) f.acknowledge();
    await outlier.advance(stallMs); // 11 ms ≥ max(stallMs, 4 × 1 ms)
    expect(outlier.offered).toEqual([1]);
    expect(outlier.acks).toEqual([1, 2, 3, 4]);
    outlier.q.dispose();
  });

  test('a stalled head in a window with room is parked only once arrivals fill the window', async () => {
    const w = queue(8, 10);
    w.arrive(1);
    w.arrive(2).acknowledge();
    await w.advance(50);
    expect(w.offered).toEqual([]); // 2 of 8 unacknowledged: the broker still sends
    for (let id = 3; id <= 6; id++) w.arrive(id).acknowledge();
    await w.advance(50);
    expect(w.offered).toEqual([]); // 6 of 8, still under 7
    w.arrive(7); // 7 of 8: near full, and the head is long past its threshold
    await w.advance(1);
    expect(w.offered).toEqual([1]);
    expect(w.acks).toEqual([1, 2, 3, 4, 5, 6]);
    w.q.dispose();
  });
});
