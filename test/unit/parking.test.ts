/**
 * The ack queue's stall relief and the parking behind it (framework/relay/parking.ts), on a real
 * MemoryRelayStore. Timing here is the queue's own threshold (a few ms), never an assertion.
 */
import { pino } from 'pino';
import { ManualClock, MemoryRelayStore } from '../../framework/relay/index.js';
import { Parking } from '../../framework/relay/parking.js';
import { AckQueue } from '../../framework/relay/transport-ack-queue.js';
import type { InboundMessage } from '../../framework/relay/transport.js';

const STALL_MS = 5;
/** A window these few messages fill, so the stall rule's near-full condition holds. */
const WINDOW = 2;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const message = (n: number): InboundMessage => ({
  topic: `t/${n}`,
  payload: Uint8Array.of(n),
  properties: {},
  dup: false,
  retain: false,
  qos: 1,
});

describe('AckQueue stall relief', () => {
  test('a head that finishes before it holds anything back is never offered: no write on the fast path', async () => {
    const acks: number[] = [];
    let offers = 0;
    const q = new AckQueue((id) => acks.push(id), { stallMs: STALL_MS, receiveMaximum: WINDOW });
    const park = async () => (offers++, true);
    const a = q.arrive(1, park);
    const b = q.arrive(2, park);
    a.acknowledge();
    b.acknowledge();
    await sleep(STALL_MS * 4);
    expect(acks).toEqual([1, 2]);
    expect(offers).toBe(0);
  });

  test('a slow head holding a finished message back is parked, then everything leaves in order', async () => {
    const acks: number[] = [];
    const offered: number[] = [];
    const q = new AckQueue((id) => acks.push(id), { stallMs: STALL_MS, receiveMaximum: WINDOW });
    const slow = q.arrive(1, async () => (offered.push(1), true));
    q.arrive(2, async () => (offered.push(2), true)).acknowledge();
    expect(acks).toEqual([]);
    await sleep(STALL_MS * 4);
    expect(offered).toEqual([1]);
    expect(acks).toEqual([1, 2]);
    slow.acknowledge(); // its handler finishing later sends nothing twice
    expect(acks).toEqual([1, 2]);
  });

  test('a slow head with nothing finished behind it, a refused park, or a failed handler keep the old order', async () => {
    const acks: number[] = [];
    const q = new AckQueue((id) => acks.push(id), { stallMs: STALL_MS, receiveMaximum: WINDOW });
    let offers = 0;
    const first = q.arrive(1, async () => (offers++, false));
    const second = q.arrive(2, async () => (offers++, true));
    await sleep(STALL_MS * 4);
    expect(offers).toBe(0); // nothing finished behind it: parking would free nothing
    second.acknowledge();
    // Finished after as long as the head has run so far, so the head is an outlier only once it
    // has taken OUTLIER_FACTOR times that (transport-stall-rule.ts).
    const deadline = Date.now() + 5000;
    while (offers === 0 && Date.now() < deadline) await sleep(STALL_MS);
    await sleep(STALL_MS * 4);
    expect(offers).toBe(1); // offered once, refused
    expect(acks).toEqual([]);
    first.acknowledge();
    expect(acks).toEqual([1, 2]);

    const failing = q.arrive(3, async () => (offers++, true));
    q.arrive(4).acknowledge();
    failing.failed();
    await sleep(STALL_MS * 4);
    expect(offers).toBe(1);
    expect(acks).toEqual([1, 2]);
    q.dispose();
  });
});

describe('Parking', () => {
  const make = (process: (m: InboundMessage) => Promise<void>, maxParked = 2) => {
    const store = new MemoryRelayStore();
    const parking = new Parking({
      store,
      clock: new ManualClock(1_800_000_000),
      log: pino({ level: 'silent' }),
      process,
      maxParked,
    });
    return { store, parking };
  };

  test('parks durably, deletes once processed, and refuses past its bound', async () => {
    const { store, parking } = make(async () => undefined);
    const t1 = await parking.park(message(1));
    const t2 = await parking.park(message(2));
    expect(t1 && t2).toBeDefined();
    expect(await parking.park(message(3))).toBeUndefined();
    expect((await store.listParkedInbound()).map((p) => p.topic)).toEqual(['t/1', 't/2']);
    t1!.settle('processed');
    await parking.stop();
    expect((await store.listParkedInbound()).map((p) => p.topic)).toEqual(['t/2']);
    expect(parking.parkedCount).toBe(2);
  });

  test('a failed parked message is processed again from its row; resume re-runs rows in order', async () => {
    const seen: string[] = [];
    let failFirst = true;
    const { store, parking } = make(async (m) => {
      seen.push(m.topic);
      if (failFirst) {
        failFirst = false;
        throw new Error('database down');
      }
    });
    await store.parkInbound({ id: 'x', topic: 't/x', payload: Uint8Array.of(9), arrivedAt: 0 as never });
    await store.parkInbound({ id: 'y', topic: 't/y', payload: Uint8Array.of(8), arrivedAt: 0 as never });
    expect(await parking.resume()).toBe(2);
    const deadline = Date.now() + 10_000;
    while ((await store.listParkedInbound()).length > 0 && Date.now() < deadline) await sleep(50);
    await parking.stop();
    // t/x failed once and ran again (after about a second); t/y ran once.
    expect(seen).toEqual(['t/x', 't/y', 't/x']);
    expect(await store.listParkedInbound()).toEqual([]);
  });
});
