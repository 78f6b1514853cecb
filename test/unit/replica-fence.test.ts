/**
 * ReplicaFence (framework/relay/replica-fence.ts) with hand-driven timers: a link down for
 * fenceAfterMs fences the membership once, a link back sooner calls it off, a link back after
 * fencing rejoins, and a stopped fence does neither.
 */
import { pino } from 'pino';
import type { LeaseTimers } from '../../framework/relay/lease-keeper.js';
import { ReplicaFence } from '../../framework/relay/replica-fence.js';
import { ArgumentError } from '../../framework/relay/errors.js';

class Timers implements LeaseTimers {
  t = 0;
  private pending: Array<{ at: number; fn: () => void }> = [];
  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void): () => void {
    const e = { at: this.t + ms, fn };
    this.pending.push(e);
    return () => void (this.pending = this.pending.filter((x) => x !== e));
  }
  async advance(ms: number): Promise<void> {
    this.t += ms;
    const due = this.pending.filter((e) => e.at <= this.t);
    this.pending = this.pending.filter((e) => e.at > this.t);
    for (const e of due) e.fn();
    await new Promise((r) => setImmediate(r));
  }
}

function setup() {
  const timers = new Timers();
  const calls: string[] = [];
  let connected = true;
  const fence = new ReplicaFence({
    membership: {
      fence: async () => void calls.push('fence'),
      rejoin: async () => void calls.push('rejoin'),
    },
    fenceAfterMs: 1000,
    connected: () => connected,
    log: pino({ level: 'silent' }),
    timers,
  });
  const down = () => {
    connected = false;
    fence.linkDown();
  };
  const up = () => {
    connected = true;
    fence.linkUp();
  };
  return { fence, timers, calls, down, up };
}

test('a link down for fenceAfterMs fences once; back, the replica rejoins', async () => {
  const { fence, timers, calls, down, up } = setup();
  down();
  await timers.advance(999);
  expect(calls).toEqual([]);
  down(); // a failed reconnect: the same outage
  await timers.advance(1);
  expect(calls).toEqual(['fence']);
  expect(fence.fenced).toBe(true);
  down();
  await timers.advance(5000);
  expect(calls).toEqual(['fence']);
  up();
  await timers.advance(0);
  expect(calls).toEqual(['fence', 'rejoin']);
  expect(fence.fenced).toBe(false);
});

test('a link back before fenceAfterMs fences nothing, and a new outage counts from its own start', async () => {
  const { timers, calls, down, up } = setup();
  down();
  await timers.advance(900);
  up();
  await timers.advance(900);
  down();
  await timers.advance(900);
  expect(calls).toEqual([]);
  await timers.advance(100);
  expect(calls).toEqual(['fence']);
});

test('a stopped fence neither fences nor rejoins', async () => {
  const { fence, timers, calls, down, up } = setup();
  down();
  await fence.stop();
  await timers.advance(5000);
  up();
  expect(calls).toEqual([]);
});

test('a fenceAfterMs that is not a positive whole number of milliseconds is refused, naming the option', () => {
  const deps = {
    membership: { fence: async () => undefined, rejoin: async () => undefined },
    connected: () => true,
    log: pino({ level: 'silent' }),
  };
  expect(() => new ReplicaFence({ ...deps, fenceAfterMs: 0 })).toThrow(/replica\.fenceAfterMs/);
  expect(() => new ReplicaFence({ ...deps, fenceAfterMs: 1.5 })).toThrow(ArgumentError);
});

test('fenced with a probe: the replica rejoins once the probe reaches the broker, and fences again if its own connection does not follow', async () => {
  const timers = new Timers();
  const calls: string[] = [];
  let reachable = false;
  const fence = new ReplicaFence({
    membership: {
      fence: async () => void calls.push('fence'),
      rejoin: async () => void calls.push('rejoin'),
    },
    fenceAfterMs: 1000,
    connected: () => false,
    log: pino({ level: 'silent' }),
    timers,
    probe: async () => (calls.push('probe'), reachable),
    probeEveryMs: 500,
  });
  fence.linkDown();
  await timers.advance(1000);
  expect(calls).toEqual(['fence']);
  await timers.advance(500);
  expect(calls).toEqual(['fence', 'probe']);
  reachable = true;
  await timers.advance(500);
  await timers.advance(0);
  expect(calls).toEqual(['fence', 'probe', 'probe', 'rejoin']);
  expect(fence.fenced).toBe(false);
  // The probe got through but the replica's own connection did not come back (no session lease).
  await timers.advance(1000);
  await timers.advance(0);
  expect(calls).toEqual(['fence', 'probe', 'probe', 'rejoin', 'fence']);
  expect(fence.fenced).toBe(true);
  await fence.stop();
});
