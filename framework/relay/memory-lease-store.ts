/**
 * In-memory LeaseStore: the leases of one process, for tests and for a bot on MemoryRelayStore,
 * which is single-process by nature. Same rules as the database stores (lease-store.ts).
 */
import {
  checkDurationMs,
  checkLeaseName,
  type LeaseRecord,
  type LeaseStore,
  type ReplicaInfo,
  type ReplicaRecord,
} from './lease-store.js';

type StoredLease = Omit<LeaseRecord, 'live'>;
type StoredReplica = Omit<ReplicaRecord, 'live'>;

const byKey =
  <T>(key: (t: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

/** LeaseStore in a Map; `now` (ms since the epoch) is injectable so tests can move time. */
export class MemoryLeaseStore implements LeaseStore {
  private readonly leases = new Map<string, StoredLease>();
  private readonly replicas = new Map<string, StoredReplica>();

  constructor(private readonly now: () => number = Date.now) {}

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseRecord | undefined> {
    checkLeaseName('lease name', name);
    checkLeaseName('lease holder', holder);
    checkDurationMs('lease ttlMs', ttlMs);
    const now = this.now();
    const stored = this.leases.get(name);
    const ours = stored?.holder === holder;
    if (stored && !ours && stored.expiresAt > now) return undefined;
    const keepsStart = stored !== undefined && ours && stored.expiresAt > now;
    const lease = { name, holder, acquiredAt: keepsStart ? stored.acquiredAt : now, expiresAt: now + ttlMs };
    this.leases.set(name, lease);
    return { ...lease, live: true };
  }

  async acquireLeases(names: readonly string[], holder: string, ttlMs: number): Promise<LeaseRecord[]> {
    const held: LeaseRecord[] = [];
    for (const name of names) {
      const lease = await this.acquireLease(name, holder, ttlMs);
      if (lease) held.push(lease);
    }
    return held;
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<LeaseRecord | undefined> {
    checkDurationMs('lease ttlMs', ttlMs);
    const now = this.now();
    const stored = this.leases.get(name);
    if (!stored || stored.holder !== holder || stored.expiresAt <= now) return undefined;
    stored.expiresAt = now + ttlMs;
    return { ...stored, live: true };
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    if (this.leases.get(name)?.holder !== holder) return false;
    this.leases.delete(name);
    return true;
  }

  async releaseAll(holder: string): Promise<string[]> {
    const names = [...this.leases.values()].filter((l) => l.holder === holder).map((l) => l.name);
    for (const name of names) this.leases.delete(name);
    return names.sort();
  }

  async listLeases(): Promise<LeaseRecord[]> {
    const now = this.now();
    return [...this.leases.values()]
      .map((l) => ({ ...l, live: l.expiresAt > now }))
      .sort(byKey((l) => l.name));
  }

  async registerReplica(info: ReplicaInfo): Promise<void> {
    checkLeaseName('replicaId', info.replicaId);
    const now = this.now();
    this.replicas.set(info.replicaId, { ...info, startedAt: now, lastSeen: now });
  }

  async heartbeatReplica(replicaId: string): Promise<boolean> {
    const stored = this.replicas.get(replicaId);
    if (stored) stored.lastSeen = this.now();
    return stored !== undefined;
  }

  async removeReplica(replicaId: string): Promise<void> {
    this.replicas.delete(replicaId);
  }

  async listReplicas(staleAfterMs: number): Promise<ReplicaRecord[]> {
    checkDurationMs('staleAfterMs', staleAfterMs);
    const now = this.now();
    return [...this.replicas.values()]
      .map((r) => ({ ...r, live: r.lastSeen > now - staleAfterMs }))
      .sort(byKey((r) => r.replicaId));
  }
}
