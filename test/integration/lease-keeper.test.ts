/**
 * Two replicas' LeaseKeepers on real Postgres, each on its own connection pool and real timers:
 * one owner per lease at every sampled moment, a quick hand-over on stop(), and a takeover after
 * the ttl when a replica loses its database, never overlapping the old owner.
 */
import { LeaseKeeper, type LeaseLossReason } from '../../framework/relay/index.js';
import { freshPgSchema, openPgIn, postgresAvailable, type OpenStore } from '../store/helpers.js';

const pgUp = await postgresAvailable('the LeaseKeeper Postgres tests');

const TTL = 1500;
const EVERY = 250;
const NAMES = ['committer:g1', 'committer:g2', 'housekeeping'];

interface Replica {
  keeper: LeaseKeeper;
  db: OpenStore;
  events: Array<{ at: number; event: 'acquired' | LeaseLossReason; name: string }>;
}

(pgUp ? describe : describe.skip)('LeaseKeeper on Postgres', () => {
  let schema: string;
  let drop: () => Promise<void>;
  const replicas: Replica[] = [];

  beforeEach(async () => {
    ({ schema, drop } = await freshPgSchema());
  });
  afterEach(async () => {
    for (const r of replicas.splice(0)) {
      await r.keeper.stop();
      if (r.db.ds.isInitialized) await r.db.cleanup();
    }
    await drop();
  });

  const replica = async (replicaId: string): Promise<Replica> => {
    const db = await openPgIn(schema);
    const keeper = new LeaseKeeper({
      store: db.store.leases,
      replica: { replicaId, pid: process.pid },
      ttlMs: TTL,
      renewEveryMs: EVERY,
    });
    const r: Replica = { keeper, db, events: [] };
    keeper.on('acquired', (name) => r.events.push({ at: performance.now(), event: 'acquired', name }));
    keeper.on('lost', (name, reason) => r.events.push({ at: performance.now(), event: reason, name }));
    keeper.on('error', () => undefined);
    NAMES.forEach((n) => keeper.want(n));
    replicas.push(r);
    return r;
  };

  /** Samples ownership every 10 ms for `ms`: throws at the first moment two replicas own one lease. */
  const watchExclusive = async (rs: Replica[], ms: number): Promise<void> => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      for (const name of NAMES) {
        const owners = rs.filter((r) => r.keeper.owns(name)).map((r) => r.keeper.holder);
        if (owners.length > 1) throw new Error(`${name} owned by ${owners.join(' and ')}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('starting together, each lease gets exactly one owner and keeps it', async () => {
    // Opened together too: the first migration of the schema runs once, under its advisory lock.
    const [a, b] = (await Promise.all([replica('replica-a'), replica('replica-b')])) as [Replica, Replica];
    await Promise.all([a.keeper.start(), b.keeper.start()]);
    await watchExclusive([a, b], 3 * TTL);
    for (const name of NAMES) {
      expect([a, b].filter((r) => r.keeper.owns(name))).toHaveLength(1);
    }
    // Nobody lost anything while both renewed.
    expect([...a.events, ...b.events].every((e) => e.event === 'acquired')).toBe(true);
    const live = await a.db.store.leases.listReplicas(TTL);
    expect(live.map((r) => [r.replicaId, r.live])).toEqual([
      ['replica-a', true],
      ['replica-b', true],
    ]);
  }, 30_000);

  it('stop() hands every lease over within a renewal period, not a ttl', async () => {
    const a = await replica('replica-a');
    await a.keeper.start();
    const b = await replica('replica-b');
    await b.keeper.start();
    expect(a.keeper.owned()).toEqual(NAMES);
    expect(b.keeper.owned()).toEqual([]);
    const stopped = performance.now();
    await a.keeper.stop();
    await watchExclusive([a, b], EVERY * 3);
    expect(b.keeper.owned()).toEqual(NAMES);
    const taken = b.events.filter((e) => e.event === 'acquired');
    expect(taken).toHaveLength(NAMES.length);
    expect(Math.max(...taken.map((e) => e.at)) - stopped).toBeLessThan(TTL);
    expect((await b.db.store.leases.listReplicas(TTL)).map((r) => r.replicaId)).toEqual(['replica-b']);
  }, 30_000);

  it('a replica that loses its database stops owning before the other takes over after the ttl', async () => {
    const a = await replica('replica-a');
    await a.keeper.start();
    const b = await replica('replica-b');
    await b.keeper.start();
    // a's pool goes away: every renewal fails from now on, as for a replica cut off or frozen.
    await a.db.ds.destroy();
    const cut = performance.now();
    await watchExclusive([a, b], 2 * TTL);
    expect(a.keeper.owned()).toEqual([]);
    expect(b.keeper.owned()).toEqual(NAMES);
    for (const name of NAMES) {
      const lost = a.events.find((e) => e.name === name && e.event === 'expired');
      const taken = b.events.find((e) => e.name === name && e.event === 'acquired');
      expect(lost!.at).toBeLessThan(taken!.at);
      expect(lost!.at - cut).toBeLessThan(TTL);
    }
  }, 30_000);
});
