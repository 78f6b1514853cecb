/**
 * Leases and the replica registry (issue 13) on every LeaseStore, and what only Postgres can show:
 * replicas on separate connections racing for one lease, and expiry judged by the database clock.
 */
import { jest } from '@jest/globals';
import pg from 'pg';
import { MemoryLeaseStore } from '../../framework/relay/index.js';
import { TypeOrmLeaseStore } from '../../framework/store/index.js';
import { openPgIn, openSqliteStore, freshPgSchema, PG_URL, postgresAvailable, tempDir } from './helpers.js';
import { leaseName, leaseStoreSuite, sleep } from './lease-suite.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('MemoryLeaseStore', () => {
  leaseStoreSuite(() =>
    Promise.resolve({ leases: new MemoryLeaseStore(), cleanup: () => Promise.resolve() }),
  );
});

describe('TypeOrmLeaseStore on SQLite', () => {
  leaseStoreSuite(async () => {
    const { store, cleanup } = await openSqliteStore(dir.path);
    return { leases: store.leases, cleanup };
  });
});

const pgUp = await postgresAvailable('the Postgres lease tests');

(pgUp ? describe : describe.skip)('TypeOrmLeaseStore on Postgres', () => {
  let schema: string;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    ({ schema, drop } = await freshPgSchema());
  });
  afterAll(() => drop());

  describe('the shared suite', () => {
    leaseStoreSuite(async () => {
      const { store, cleanup } = await openPgIn(schema);
      return { leases: store.leases, cleanup };
    });
  });

  describe('replicas on separate connections', () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0)) await c();
    });
    /** A replica: its own DataSource (pool), as a separate process would have. */
    const replica = async () => {
      const { store, cleanup } = await openPgIn(schema);
      cleanups.push(cleanup);
      return store.leases;
    };

    it('four replicas starting together on a fresh schema all migrate it, one at a time', async () => {
      const fresh = await freshPgSchema();
      try {
        const opened = await Promise.all([0, 1, 2, 3].map(() => openPgIn(fresh.schema)));
        for (const o of opened) cleanups.push(o.cleanup);
        const applied = (await opened[0]!.ds.query(`SELECT COUNT(*) AS "n" FROM "relay_migrations"`)) as {
          n: string;
        }[];
        expect(Number(applied[0]!.n)).toBe(opened[0]!.ds.migrations.length);
        for (const o of opened) expect(await o.ds.showMigrations()).toBe(false);
      } finally {
        for (const c of cleanups.splice(0)) await c();
        await fresh.drop();
      }
    });

    it('four replicas racing for one free lease: exactly one wins, every round', async () => {
      const replicas = await Promise.all([replica(), replica(), replica(), replica()]);
      for (let round = 0; round < 30; round++) {
        const name = leaseName('race');
        const results = await Promise.all(
          replicas.map((r, i) => r.acquireLease(name, `replica-${i}`, 60_000)),
        );
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        const [stored] = (await replicas[0]!.listLeases()).filter((l) => l.name === name);
        expect(stored!.holder).toBe(winners[0]!.holder);
      }
    });

    it('four replicas racing to take over one expired lease: exactly one wins', async () => {
      const replicas = await Promise.all([replica(), replica(), replica(), replica()]);
      for (let round = 0; round < 10; round++) {
        const name = leaseName('takeover');
        expect(await replicas[0]!.acquireLease(name, 'dead-replica', 50)).toBeDefined();
        await sleep(80);
        const results = await Promise.all(
          replicas.map((r, i) => r.acquireLease(name, `replica-${i}`, 60_000)),
        );
        expect(results.filter((r) => r !== undefined)).toHaveLength(1);
      }
    });

    it('judges expiry by the database clock: a replica whose own clock is an hour fast takes nothing early', async () => {
      const a = await replica();
      const b = await replica();
      const name = leaseName('clock');
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      const dbNow = async () =>
        Number(
          (
            (await client.query(`SELECT FLOOR(EXTRACT(EPOCH FROM now()) * 1000)::bigint AS "now"`))
              .rows[0] as {
              now: string;
            }
          ).now,
        );
      const skew = jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 3_600_000);
      try {
        const before = await dbNow();
        const lease = await a.acquireLease(name, 'replica-a', 2_000);
        const after = await dbNow();
        // Stamped with the server's time, not this process's (an hour ahead).
        expect(lease!.acquiredAt).toBeGreaterThanOrEqual(before);
        expect(lease!.acquiredAt).toBeLessThanOrEqual(after);
        expect(Date.now() - lease!.expiresAt).toBeGreaterThan(3_500_000);
        // By its own clock b would call the lease an hour expired; the database says otherwise.
        expect(await b.acquireLease(name, 'replica-b', 2_000)).toBeUndefined();
        expect((await b.listLeases()).find((l) => l.name === name)?.live).toBe(true);
      } finally {
        skew.mockRestore();
        await client.end();
      }
    });

    it('a lease store of its own on a DataSource works beside the relay store', async () => {
      const { ds, cleanup } = await openPgIn(schema);
      cleanups.push(cleanup);
      const own = new TypeOrmLeaseStore(ds);
      const name = leaseName('own');
      expect(await own.acquireLease(name, 'replica-a', 60_000)).toBeDefined();
      expect(await (await replica()).acquireLease(name, 'replica-b', 60_000)).toBeUndefined();
    });
  });
});
