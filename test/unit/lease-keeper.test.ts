/**
 * LeaseKeeper on MemoryLeaseStore with hand-driven timers: who owns what as time moves, renewals,
 * a replica whose store calls fail, graceful hand-over on stop() and drop().
 */
import {
  ArgumentError,
  LeaseKeeper,
  MemoryLeaseStore,
  type LeaseLossReason,
  type LeaseStore,
  type LeaseTimers,
} from '../../framework/relay/index.js';

/** Timers that fire only when a test moves time, letting the store work each one starts settle. */
class ManualTimers implements LeaseTimers {
  private t = 0;
  private pending: Array<{ at: number; fn: () => void }> = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): () => void {
    const entry = { at: this.t + ms, fn };
    this.pending.push(entry);
    return () => {
      this.pending = this.pending.filter((e) => e !== entry);
    };
  }

  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = this.pending.filter((e) => e.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.pending = this.pending.filter((e) => e !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

const settle = () => new Promise((r) => setImmediate(r));

const TTL = 3000;
const EVERY = 1000;

/** A store that fails every call while `down` is set: a replica cut off from its database. */
function severable(store: LeaseStore): { store: LeaseStore; cut(down: boolean): void } {
  let down = false;
  const wrapped = new Proxy(store, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        down
          ? Promise.reject(new Error('database unreachable'))
          : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return { store: wrapped, cut: (d) => (down = d) };
}

/**
 * A store whose calls get no answer at all while `hung` is set: a pulled cable between the replica
 * and its database, where a request waits on TCP retransmissions instead of failing.
 */
function hangable(store: LeaseStore): { store: LeaseStore; hang(hung: boolean): void } {
  let hung = false;
  const wrapped = new Proxy(store, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        hung ? new Promise(() => undefined) : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return { store: wrapped, hang: (h) => (hung = h) };
}

interface Seen {
  at: number;
  event: 'acquired' | LeaseLossReason;
  name: string;
}

describe('LeaseKeeper', () => {
  let timers: ManualTimers;
  let store: MemoryLeaseStore;
  const keepers: LeaseKeeper[] = [];

  beforeEach(() => {
    timers = new ManualTimers();
    store = new MemoryLeaseStore(() => 1_800_000_000_000 + timers.now());
  });
  afterEach(async () => {
    for (const k of keepers.splice(0)) await k.stop();
  });

  const keeper = (replicaId: string, on: LeaseStore = store) => {
    const k = new LeaseKeeper({ store: on, replica: { replicaId }, ttlMs: TTL, renewEveryMs: EVERY, timers });
    const seen: Seen[] = [];
    k.on('acquired', (name) => seen.push({ at: timers.now(), event: 'acquired', name }));
    k.on('lost', (name, reason) => seen.push({ at: timers.now(), event: reason, name }));
    k.on('error', () => undefined);
    keepers.push(k);
    return { k, seen };
  };

  it('the first replica takes every wanted lease, keeps it through renewals, and the second gets none', async () => {
    const a = keeper('replica-a');
    const b = keeper('replica-b');
    for (const { k } of [a, b]) ['committer:g1', 'housekeeping'].forEach((n) => k.want(n));
    await a.k.start();
    await b.k.start();
    expect(a.k.owned()).toEqual(['committer:g1', 'housekeeping']);
    expect(b.k.owned()).toEqual([]);
    await timers.advance(10 * TTL);
    expect(a.k.owned()).toEqual(['committer:g1', 'housekeeping']);
    expect(a.seen.map((s) => s.event)).toEqual(['acquired', 'acquired']);
    expect(b.seen).toEqual([]);
    expect((await store.listLeases()).map((l) => [l.name, l.holder, l.live])).toEqual([
      ['committer:g1', 'replica-a', true],
      ['housekeeping', 'replica-a', true],
    ]);
  });

  it('a replica cut off from the database stops owning before the other can take over', async () => {
    const cut = severable(store);
    const a = keeper('replica-a', cut.store);
    const b = keeper('replica-b');
    a.k.want('jobs');
    b.k.want('jobs');
    await a.k.start();
    await b.k.start();
    await timers.advance(2 * EVERY);
    const lastRenewal = timers.now(); // a's timer fires on the EVERY grid, so this round renewed
    cut.cut(true);
    await timers.advance(2 * TTL);
    const lost = a.seen.find((s) => s.event === 'expired');
    const taken = b.seen.find((s) => s.event === 'acquired');
    expect(lost).toBeDefined();
    expect(taken).toBeDefined();
    expect(lost!.at).toBeLessThanOrEqual(lastRenewal + TTL - TTL / 10);
    expect(taken!.at).toBeGreaterThanOrEqual(lastRenewal + TTL);
    expect(a.k.owns('jobs')).toBe(false);
    expect(b.k.owns('jobs')).toBe(true);
    // Back online, a finds the lease taken and stays out.
    cut.cut(false);
    await timers.advance(3 * EVERY);
    expect(a.k.owns('jobs')).toBe(false);
    expect(b.k.owned()).toEqual(['jobs']);
  });

  it('a store call that never answers (a pulled cable) holds no round: the lease is lost on time and taken again once the link is back', async () => {
    const link = hangable(store);
    const a = keeper('replica-a', link.store);
    a.k.want('mqtt-session/a');
    await a.k.start();
    await timers.advance(2 * EVERY);
    const lastRenewal = timers.now();
    link.hang(true);
    await timers.advance(2 * TTL);
    // Reported lost at its local deadline, although the round's requests never came back.
    const lost = a.seen.find((s) => s.event === 'expired');
    expect(lost).toBeDefined();
    expect(lost!.at).toBeLessThanOrEqual(lastRenewal + TTL - TTL / 10);
    // The link is back (the hung requests stay hung): the next round takes the free lease.
    link.hang(false);
    const back = timers.now();
    await timers.advance(3 * EVERY);
    expect(a.k.owns('mqtt-session/a')).toBe(true);
    expect(a.seen.filter((s) => s.event === 'acquired').pop()!.at).toBeLessThanOrEqual(back + 2 * EVERY);
  });

  it('the same with several leases wanted (one acquireLeases statement per round): lost on time, taken again once the link is back', async () => {
    const link = hangable(store);
    const a = keeper('replica-a', link.store);
    a.k.want('mqtt-session/a');
    a.k.want('scheduler');
    await a.k.start();
    await timers.advance(2 * EVERY);
    const lastRenewal = timers.now();
    link.hang(true);
    await timers.advance(2 * TTL);
    const lost = a.seen.filter((s) => s.event === 'expired');
    expect(lost).toHaveLength(2);
    for (const l of lost) expect(l.at).toBeLessThanOrEqual(lastRenewal + TTL - TTL / 10);
    link.hang(false);
    const back = timers.now();
    await timers.advance(3 * EVERY);
    expect(a.k.owned()).toEqual(['mqtt-session/a', 'scheduler']);
    const acquired = a.seen.filter((s) => s.event === 'acquired').slice(-2);
    for (const s of acquired) expect(s.at).toBeLessThanOrEqual(back + 2 * EVERY);
  });

  it('fence() and rejoin() while the store does not answer: the fence ends, and the rejoin takes the leases once the link is back', async () => {
    const link = hangable(store);
    const a = keeper('replica-a', link.store);
    a.k.want('mqtt-session/a');
    await a.k.start();
    link.hang(true);
    let fenced = false;
    void a.k.fence().then(() => (fenced = true));
    await timers.advance(2 * EVERY);
    expect(fenced).toBe(true);
    link.hang(false);
    let rejoined = false;
    void a.k.rejoin().then(() => (rejoined = true));
    await timers.advance(3 * EVERY);
    expect(rejoined).toBe(true);
    expect(a.k.owns('mqtt-session/a')).toBe(true);
  });

  it('reports a lease taken when the store refuses its renewal', async () => {
    const a = keeper('replica-a');
    a.k.want('bundle-refresh');
    await a.k.start();
    // Someone (an operator, a bug) frees it and another replica takes it between two renewals.
    await store.releaseLease('bundle-refresh', 'replica-a');
    await store.acquireLease('bundle-refresh', 'replica-z', TTL);
    await timers.advance(EVERY);
    expect(a.seen.map((s) => s.event)).toEqual(['acquired', 'taken']);
    expect(a.k.owns('bundle-refresh')).toBe(false);
  });

  it('renews every wanted lease in one statement per round, however many it wants (issue 13)', async () => {
    const calls: Record<string, number> = {};
    const counted = new Proxy(store, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls[String(key)] = (calls[String(key)] ?? 0) + 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const a = keeper('replica-a', counted);
    const b = keeper('replica-b', counted);
    const names = ['bundle', 'housekeeping', 'outbox-orphans', 'scheduler', 'slot-sessions'];
    for (const { k } of [a, b]) names.forEach((n) => k.want(n));
    await a.k.start();
    await b.k.start();
    const before = { ...calls };
    await timers.advance(10 * EVERY);
    const during = (key: string) => (calls[key] ?? 0) - (before[key] ?? 0);
    // Ten rounds each, owner (a) and not (b): one statement for the leases, one heartbeat.
    expect(during('acquireLeases')).toBe(20);
    expect(during('heartbeatReplica')).toBe(20);
    expect(during('acquireLease') + during('renewLease')).toBe(0);
    expect(a.k.owned()).toEqual(names);
    expect(b.k.owned()).toEqual([]);
    expect(a.seen.map((s) => s.event)).toEqual(names.map(() => 'acquired'));
  });

  it('a lease freed, used by another and free again between two rounds is reported taken, then acquired on the next round', async () => {
    const a = keeper('replica-a');
    a.k.want('bundle');
    a.k.want('scheduler');
    await a.k.start();
    // Someone frees it; replica-z owns it a while and lets it go before a's next round.
    await store.releaseLease('scheduler', 'replica-a');
    await timers.advance(EVERY / 2);
    await store.acquireLease('scheduler', 'replica-z', TTL);
    await store.releaseLease('scheduler', 'replica-z');
    await timers.advance(EVERY / 2);
    expect(a.k.owns('scheduler')).toBe(false);
    await timers.advance(EVERY);
    expect(a.seen.map((s) => [s.event, s.name])).toEqual([
      ['acquired', 'bundle'],
      ['acquired', 'scheduler'],
      ['taken', 'scheduler'],
      ['acquired', 'scheduler'],
    ]);
    expect(a.k.owned()).toEqual(['bundle', 'scheduler']);
    // Held by another at the round: taken, and not ours.
    await store.releaseLease('bundle', 'replica-a');
    await store.acquireLease('bundle', 'replica-z', TTL);
    await timers.advance(EVERY);
    expect(a.seen.at(-1)).toMatchObject({ event: 'taken', name: 'bundle' });
    expect(a.k.owned()).toEqual(['scheduler']);
  });

  it('stop() reports every lease released, frees it and the replica row, and the other replica takes over at once', async () => {
    const a = keeper('replica-a');
    const b = keeper('replica-b');
    for (const { k } of [a, b]) ['g1', 'g2'].forEach((n) => k.want(n));
    await a.k.start();
    await b.k.start();
    expect((await store.listReplicas(TTL)).map((r) => [r.replicaId, r.live])).toEqual([
      ['replica-a', true],
      ['replica-b', true],
    ]);
    await a.k.stop();
    expect(a.seen.slice(2)).toEqual([
      { at: 0, event: 'released', name: 'g1' },
      { at: 0, event: 'released', name: 'g2' },
    ]);
    expect((await store.listReplicas(TTL)).map((r) => r.replicaId)).toEqual(['replica-b']);
    await timers.advance(EVERY);
    // One renewal period, not a ttl: the lease was released, not left to expire.
    expect(b.k.owned()).toEqual(['g1', 'g2']);
    expect(b.seen.every((s) => s.at <= EVERY)).toBe(true);
  });

  it('drop() releases one lease and wants it no more; want() on a running keeper takes at once', async () => {
    const a = keeper('replica-a');
    const b = keeper('replica-b');
    a.k.want('g1');
    b.k.want('g1');
    await a.k.start();
    await b.k.start();
    await a.k.drop('g1');
    expect(a.seen.map((s) => s.event)).toEqual(['acquired', 'released']);
    await timers.advance(EVERY);
    expect(b.k.owns('g1')).toBe(true);
    await timers.advance(3 * TTL);
    expect(a.k.owns('g1')).toBe(false);
    a.k.want('g2');
    await settle();
    expect(a.k.owns('g2')).toBe(true);
  });

  it('keeps its replica row beating, registering again if it was removed', async () => {
    const a = keeper('replica-a');
    await a.k.start();
    await timers.advance(5 * TTL);
    expect((await store.listReplicas(EVERY + 1))[0]).toMatchObject({ replicaId: 'replica-a', live: true });
    await store.removeReplica('replica-a');
    await timers.advance(EVERY);
    expect((await store.listReplicas(EVERY + 1)).map((r) => r.replicaId)).toEqual(['replica-a']);
  });

  it('fence() gives up the duties at once but keeps the slot, stops the heartbeat; rejoin() competes again', async () => {
    const a = keeper('replica-a');
    const b = keeper('replica-b');
    a.k.want('jobs');
    a.k.want('replica-slot/0', { keepWhileFenced: true });
    b.k.want('jobs');
    await a.k.start();
    await b.k.start();
    expect(a.k.owned()).toEqual(['jobs', 'replica-slot/0']);
    await a.k.fence();
    expect(a.k.fenced).toBe(true);
    expect(a.seen.filter((s) => s.event === 'fenced').map((s) => s.name)).toEqual(['jobs']);
    expect(a.k.owned()).toEqual(['replica-slot/0']);
    await timers.advance(EVERY);
    expect(b.k.owned()).toEqual(['jobs']);
    // No heartbeat: a goes stale while its slot lease stays live.
    await timers.advance(3 * TTL);
    expect(a.k.owned()).toEqual(['replica-slot/0']);
    const live = async () =>
      Object.fromEntries((await store.listReplicas(TTL)).map((r) => [r.replicaId, r.live]));
    expect(await live()).toEqual({ 'replica-a': false, 'replica-b': true });
    expect((await store.listLeases()).find((l) => l.name === 'replica-slot/0')).toMatchObject({
      holder: 'replica-a',
      live: true,
    });
    await a.k.rejoin();
    expect(a.k.fenced).toBe(false);
    expect(await live()).toEqual({ 'replica-a': true, 'replica-b': true });
    // Competing again: b's stop hands the duty over.
    await b.k.stop();
    await timers.advance(EVERY);
    expect(a.k.owned()).toEqual(['jobs', 'replica-slot/0']);
  });

  it('a renewal in flight when fence() is called does not take the duty back', async () => {
    const a = keeper('replica-a');
    a.k.want('jobs');
    await a.k.start();
    const round = a.k.renewNow();
    await a.k.fence();
    await round;
    await timers.advance(2 * EVERY);
    expect(a.k.owned()).toEqual([]);
    expect((await store.listLeases()).filter((l) => l.holder === 'replica-a')).toEqual([]);
  });

  it('refuses a renewal interval above half the ttl', () => {
    expect(
      () => new LeaseKeeper({ store, replica: { replicaId: 'r' }, ttlMs: 1000, renewEveryMs: 600, timers }),
    ).toThrow(ArgumentError);
    expect(() => new LeaseKeeper({ store, replica: { replicaId: '' }, timers })).toThrow(/replicaId/);
  });
});
