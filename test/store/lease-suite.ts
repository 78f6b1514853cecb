/**
 * One LeaseStore suite for every implementation (memory, SQLite, Postgres): the lease rules of
 * framework/relay/lease-store.ts, with real time (short ttls) so the database stores are judged on
 * their own clocks.
 */
import { randomBytes } from 'node:crypto';
import { ArgumentError, type LeaseStore } from '../../framework/relay/index.js';

/** One opened store; `cleanup` closes whatever it opened. */
export interface OpenLeaseStore {
  leases: LeaseStore;
  cleanup(): Promise<void>;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Unique per call, so suites sharing a database never meet. */
export const leaseName = (tag: string) => `${tag}-${randomBytes(5).toString('hex')}`;

export function leaseStoreSuite(open: () => Promise<OpenLeaseStore>): void {
  let opened: OpenLeaseStore;
  let leases: LeaseStore;
  beforeEach(async () => {
    opened = await open();
    leases = opened.leases;
  });
  afterEach(() => opened.cleanup());

  it('gives a free lease to the first holder and refuses another while it is live', async () => {
    const name = leaseName('free');
    const a = await leases.acquireLease(name, 'replica-a', 60_000);
    expect(a).toMatchObject({ name, holder: 'replica-a', live: true });
    expect(a!.expiresAt - a!.acquiredAt).toBe(60_000);
    expect(await leases.acquireLease(name, 'replica-b', 60_000)).toBeUndefined();
    expect(await leases.renewLease(name, 'replica-b', 60_000)).toBeUndefined();
    const [listed] = (await leases.listLeases()).filter((l) => l.name === name);
    expect(listed).toEqual({ ...a, live: true });
  });

  it('acquiring again as the holder extends the lease and keeps when it was taken', async () => {
    const name = leaseName('again');
    const first = await leases.acquireLease(name, 'replica-a', 60_000);
    await sleep(20);
    const second = await leases.acquireLease(name, 'replica-a', 60_000);
    expect(second!.acquiredAt).toBe(first!.acquiredAt);
    expect(second!.expiresAt).toBeGreaterThan(first!.expiresAt);
  });

  it('an expired lease is taken over by another holder, and the old holder cannot renew it', async () => {
    const name = leaseName('expiry');
    const a = await leases.acquireLease(name, 'replica-a', 150);
    expect(a).toBeDefined();
    expect(await leases.acquireLease(name, 'replica-b', 60_000)).toBeUndefined();
    await sleep(250);
    expect((await leases.listLeases()).find((l) => l.name === name)?.live).toBe(false);
    const b = await leases.acquireLease(name, 'replica-b', 60_000);
    expect(b).toMatchObject({ holder: 'replica-b', live: true });
    expect(b!.acquiredAt).toBeGreaterThanOrEqual(a!.expiresAt);
    expect(await leases.renewLease(name, 'replica-a', 60_000)).toBeUndefined();
    expect(await leases.acquireLease(name, 'replica-a', 60_000)).toBeUndefined();
  });

  it('renewing keeps a lease past its first expiry; a lapsed one cannot be renewed', async () => {
    const name = leaseName('renew');
    await leases.acquireLease(name, 'replica-a', 200);
    for (let i = 0; i < 5; i++) {
      await sleep(80);
      expect(await leases.renewLease(name, 'replica-a', 200)).toMatchObject({ holder: 'replica-a' });
      expect(await leases.acquireLease(name, 'replica-b', 200)).toBeUndefined();
    }
    await sleep(300);
    // Lapsed: another replica may have acted as owner meanwhile, so it is not silently extended.
    expect(await leases.renewLease(name, 'replica-a', 200)).toBeUndefined();
  });

  it('acquireLeases takes many at once by the acquireLease rules: free, ours (start kept), expired; not a live one of another', async () => {
    const [free, ours, expired, theirs] = ['free', 'ours', 'expired', 'theirs'].map(leaseName);
    const first = await leases.acquireLease(ours!, 'replica-a', 60_000);
    await leases.acquireLease(expired!, 'replica-b', 100);
    await leases.acquireLease(theirs!, 'replica-b', 60_000);
    await sleep(200);
    const got = await leases.acquireLeases!([free!, ours!, expired!, theirs!], 'replica-a', 60_000);
    const byName = new Map(got.map((l) => [l.name, l]));
    expect([...byName.keys()].sort()).toEqual([free!, ours!, expired!].sort());
    for (const l of got) expect(l).toMatchObject({ holder: 'replica-a', live: true });
    expect(byName.get(ours!)!.acquiredAt).toBe(first!.acquiredAt);
    expect(byName.get(ours!)!.expiresAt).toBeGreaterThan(first!.expiresAt);
    expect(byName.get(expired!)!.acquiredAt).toBeGreaterThan(first!.acquiredAt);
    expect((await leases.listLeases()).find((l) => l.name === theirs)?.holder).toBe('replica-b');
    expect(await leases.acquireLeases!([], 'replica-a', 60_000)).toEqual([]);
  });

  it('releasing frees a lease at once; only its holder can release it', async () => {
    const name = leaseName('release');
    await leases.acquireLease(name, 'replica-a', 60_000);
    expect(await leases.releaseLease(name, 'replica-b')).toBe(false);
    expect(await leases.acquireLease(name, 'replica-b', 60_000)).toBeUndefined();
    expect(await leases.releaseLease(name, 'replica-a')).toBe(true);
    expect(await leases.acquireLease(name, 'replica-b', 60_000)).toMatchObject({ holder: 'replica-b' });
    expect(await leases.releaseLease(name, 'replica-a')).toBe(false);
  });

  it('releaseAll frees every lease of one holder and no other', async () => {
    const holder = leaseName('holder');
    const mine = [leaseName('all'), leaseName('all')];
    const theirs = leaseName('theirs');
    for (const name of mine) await leases.acquireLease(name, holder, 60_000);
    await leases.acquireLease(theirs, 'replica-z', 60_000);
    expect(await leases.releaseAll(holder)).toEqual([...mine].sort());
    expect(await leases.releaseAll(holder)).toEqual([]);
    const names = (await leases.listLeases()).map((l) => l.name);
    expect(names).toContain(theirs);
    expect(names).not.toContain(mine[0]);
    expect(await leases.acquireLease(mine[0]!, 'replica-y', 60_000)).toMatchObject({ holder: 'replica-y' });
  });

  it('keeps a registry of replicas: heartbeats keep one live, a silent one goes stale, stop removes it', async () => {
    const a = leaseName('replica');
    const b = leaseName('replica');
    await leases.registerReplica({ replicaId: a, host: 'host-a', pid: 101 });
    await leases.registerReplica({ replicaId: b });
    await sleep(250);
    expect(await leases.heartbeatReplica(a)).toBe(true);
    const mine = (await leases.listReplicas(200)).filter((r) => r.replicaId === a || r.replicaId === b);
    expect(Object.fromEntries(mine.map((r) => [r.replicaId, r.live]))).toEqual({ [a]: true, [b]: false });
    const ra = mine.find((r) => r.replicaId === a)!;
    expect(ra).toMatchObject({ host: 'host-a', pid: 101 });
    expect(ra.lastSeen - ra.startedAt).toBeGreaterThanOrEqual(200);
    expect(mine.find((r) => r.replicaId === b)).not.toHaveProperty('host');
    await leases.removeReplica(a);
    expect(await leases.heartbeatReplica(a)).toBe(false);
    expect((await leases.listReplicas(60_000)).map((r) => r.replicaId)).not.toContain(a);
  });

  it('refuses bad names and durations with ArgumentError, naming the field', async () => {
    await expect(leases.acquireLease('', 'replica-a', 1000)).rejects.toThrow(ArgumentError);
    await expect(leases.acquireLease('x'.repeat(201), 'replica-a', 1000)).rejects.toThrow(/lease name/);
    await expect(leases.acquireLease('n', 'replica-a', 0)).rejects.toThrow(/ttlMs/);
    await expect(leases.acquireLease('n', 'replica-a', 1.5)).rejects.toThrow(/ttlMs/);
    await expect(leases.renewLease('n', 'replica-a', -1)).rejects.toThrow(/ttlMs/);
    await expect(leases.registerReplica({ replicaId: '' })).rejects.toThrow(/replicaId/);
    await expect(leases.listReplicas(0)).rejects.toThrow(/staleAfterMs/);
  });
}
