/**
 * The claim rules for a dead replica's outbox rows (issue 13, outbox-orphans.ts) on the memory
 * stores and on Postgres: only the duty's owner claims; rows of a replica without a live registry
 * entry (stale heartbeat, or removed) become the claimer's, in commit order; live replicas' rows,
 * our own and rows of no replica stay where they are; two claimers never split or duplicate rows.
 */
import { pino } from 'pino';
import { asUnixSeconds } from '../../framework/relay/brand.js';
import { DeadReplicas } from '../../framework/relay/dead-replicas.js';
import {
  deadOwners,
  MemoryLeaseStore,
  MemoryRelayStore,
  type LeaseStore,
  type RelayStore,
} from '../../framework/relay/index.js';
import { OutboxOrphans } from '../../framework/relay/outbox-orphans.js';
import type { OutboxRecord } from '../../framework/relay/store.js';
import { openPgIn, freshPgSchema, postgresAvailable } from './helpers.js';

const STALE_MS = 15_000;
const log = pino({ level: 'silent' });

const row = (id: string, replica?: string, over: Partial<OutboxRecord> = {}): OutboxRecord => ({
  id,
  topic: `relay/v1/inbox/${id}`,
  payload: new Uint8Array([1, 2, 3]),
  createdAt: asUnixSeconds(1_700_000_000),
  ...(replica !== undefined ? { replica } : {}),
  ...over,
});

interface Backend {
  store: RelayStore;
  leases: LeaseStore;
  /** Makes `replicaId`'s last heartbeat older than STALE_MS, as if it died. */
  age(replicaId: string): Promise<void>;
  cleanup(): Promise<void>;
}

function orphans(b: Backend, replica: string, owns = () => true) {
  let published = 0;
  const sweeper = new OutboxOrphans({
    store: b.store,
    dead: new DeadReplicas({ registry: b.leases, self: replica, staleAfterMs: STALE_MS }),
    replica,
    owns,
    publishClaimed: async () => {
      published++;
    },
    log,
  });
  return { sweeper, published: () => published };
}

const ids = (rows: OutboxRecord[]) => rows.map((r) => r.id);

function claimRules(open: () => Promise<Backend>): void {
  let b: Backend;
  beforeEach(async () => {
    b = await open();
    await b.leases.registerReplica({ replicaId: 'bots/me' });
    await b.leases.registerReplica({ replicaId: 'bots/live' });
    await b.leases.registerReplica({ replicaId: 'bots/stale' });
    await b.leases.registerReplica({ replicaId: 'bots/stopped' });
    await b.leases.removeReplica('bots/stopped');
    await b.age('bots/stale');
    await b.store.commit({
      outbox: [
        row('s1', 'bots/stale'),
        row('m1', 'bots/me'),
        row('l1', 'bots/live'),
        row('n1'),
        row('x1', 'bots/stopped', { awaitAck: true }),
        row('s2', 'bots/stale', { dependsOn: 's1' }),
        row('x2', 'bots/stopped', { dependsOn: 'x1' }),
      ],
    });
  });
  afterEach(() => b.cleanup());

  it('the owner claims the rows of stale and removed replicas only, and publishes them once', async () => {
    const { sweeper, published } = orphans(b, 'bots/me');
    expect(await sweeper.sweep()).toBe(4);
    expect(published()).toBe(1);
    expect(ids(await b.store.listOutbox(100, 'bots/me'))).toEqual(['s1', 'm1', 'n1', 'x1', 's2', 'x2']);
    const mine = await b.store.listOutbox(100, 'bots/me');
    expect(mine.find((r) => r.id === 'x2')).toEqual(row('x2', 'bots/me', { dependsOn: 'x1' }));
    expect(mine.find((r) => r.id === 'x1')?.awaitAck).toBe(true);
    expect(ids(await b.store.listOutbox(100, 'bots/live'))).toEqual(['l1', 'n1']);
    expect(await b.store.listOutboxOwners()).toEqual(['bots/live', 'bots/me']);
    // Nothing dead is left: the next sweep claims and publishes nothing.
    expect(await sweeper.sweep()).toBe(0);
    expect(published()).toBe(1);
  });

  it('a replica that does not own the duty claims nothing', async () => {
    const { sweeper, published } = orphans(b, 'bots/me', () => false);
    expect(await sweeper.sweep()).toBe(0);
    expect(published()).toBe(0);
    expect(await b.store.listOutboxOwners()).toEqual(['bots/live', 'bots/me', 'bots/stale', 'bots/stopped']);
  });

  it('a replica restarted under its id before the sweep keeps its rows', async () => {
    await b.leases.registerReplica({ replicaId: 'bots/stale' });
    const { sweeper } = orphans(b, 'bots/me');
    expect(await sweeper.sweep()).toBe(2);
    expect(ids(await b.store.listOutbox(100, 'bots/stale'))).toEqual(['s1', 'n1', 's2']);
  });

  it("two claimers at once never split or duplicate a dead replica's rows", async () => {
    const [a, c] = [orphans(b, 'bots/me'), orphans(b, 'bots/live')];
    const [byA, byC] = await Promise.all([a.sweeper.sweep(), c.sweeper.sweep()]);
    expect(byA + byC).toBe(4);
    const me = ids(await b.store.listOutbox(100, 'bots/me'));
    const live = ids(await b.store.listOutbox(100, 'bots/live'));
    // Each dead replica's rows went to one claimer, whole.
    for (const pair of [
      ['s1', 's2'],
      ['x1', 'x2'],
    ])
      expect(pair.every((id) => me.includes(id)) || pair.every((id) => live.includes(id))).toBe(true);
    expect(me.filter((id) => live.includes(id))).toEqual(['n1']);
  });
}

test('deadOwners: neither ourselves nor a live replica', () => {
  const rec = (replicaId: string, live: boolean) => ({ replicaId, live, startedAt: 0, lastSeen: 0 });
  expect(
    deadOwners(['a', 'b', 'c', 'me'], [rec('a', true), rec('b', false), rec('me', false)], 'me'),
  ).toEqual(['b', 'c']);
});

describe('memory stores', () => {
  claimRules(async () => {
    let now = 1_000_000_000_000;
    const leases = new MemoryLeaseStore(() => now);
    return {
      store: new MemoryRelayStore(),
      leases,
      age: async (id) => {
        // Everyone else beats again after the time moved on; `id` stays behind.
        now += STALE_MS * 2;
        for (const r of await leases.listReplicas(STALE_MS * 10))
          if (r.replicaId !== id) await leases.heartbeatReplica(r.replicaId);
      },
      cleanup: async () => {},
    };
  });
});

const pgUp = await postgresAvailable('the Postgres outbox claim tests');

(pgUp ? describe : describe.skip)('Postgres', () => {
  claimRules(async () => {
    const { schema, drop } = await freshPgSchema();
    const opened = await openPgIn(schema);
    return {
      store: opened.store,
      leases: opened.store.leases,
      age: async (id) => {
        await opened.ds.query(
          `UPDATE "replicas" SET "last_seen" = "last_seen" - $1 WHERE "replica_id" = $2`,
          [STALE_MS * 2, id],
        );
      },
      cleanup: async () => {
        await opened.cleanup();
        await drop();
      },
    };
  });
});
