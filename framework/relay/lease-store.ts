/**
 * What replicas of one identity share to split duties that must have one owner (ARCHITECTURE.md
 * "One identity, many processes"): named leases with an expiry, and a registry of live replicas.
 * framework/store implements it on Postgres and SQLite; MemoryLeaseStore (memory-lease-store.ts)
 * in memory.
 *
 * Times are milliseconds since the epoch on the store's clock. On Postgres that is the database
 * server's clock, so replicas whose own clocks disagree still agree on who holds what.
 */
import { ArgumentError } from './errors.js';

/** One lease as stored: who holds `name` and until when (store clock, ms). */
export interface LeaseRecord {
  name: string;
  holder: string;
  /** When `holder` took it; renewals keep this. */
  acquiredAt: number;
  expiresAt: number;
  /** Whether it was unexpired when read, by the store's clock. */
  live: boolean;
}

/** What a replica says about itself when it registers. */
export interface ReplicaInfo {
  /**
   * The holder name of its leases: one per process (cli/replica.ts gives a fixed slot's process
   * `<share group>/<slot>~<instance>`, broker-client-id.ts processHolder), so two processes
   * configured with one slot are told apart; ids without the instance are older releases'.
   */
  replicaId: string;
  host?: string;
  pid?: number;
}

/** One registered replica: when it registered and when it last sent a heartbeat (store clock, ms). */
export interface ReplicaRecord extends ReplicaInfo {
  startedAt: number;
  lastSeen: number;
  /** Whether its last heartbeat is recent enough, by the store's clock (see listReplicas). */
  live: boolean;
}

/** Leases and the replica registry; every method is one atomic statement. */
export interface LeaseStore {
  /**
   * Takes `name` for `holder` for `ttlMs` when nobody holds it, its lease expired, or `holder` holds
   * it already (then the expiry moves to now + ttlMs). Returns the lease now held by `holder`, or
   * undefined when another holder's lease is live. Of any number of concurrent callers on a free
   * name, exactly one gets a lease.
   */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseRecord | undefined>;
  /**
   * Extends a live lease of `holder` to now + ttlMs. Undefined when `holder` does not hold a live
   * lease on `name`: ownership lapsed, and another replica may have acted as owner since.
   */
  renewLease(name: string, holder: string, ttlMs: number): Promise<LeaseRecord | undefined>;
  /** Gives up `name` if `holder` holds it (live or expired); returns whether it did. */
  releaseLease(name: string, holder: string): Promise<boolean>;
  /** Gives up every lease of `holder`; returns their names. What a graceful shutdown calls. */
  releaseAll(holder: string): Promise<string[]>;
  /** Every stored lease, live or expired, by name. */
  listLeases(): Promise<LeaseRecord[]>;

  /** Records a replica as started now (replacing any earlier row of the same id). */
  registerReplica(info: ReplicaInfo): Promise<void>;
  /** Marks a registered replica as seen now; false when it has no row (it was removed). */
  heartbeatReplica(replicaId: string): Promise<boolean>;
  /** Deletes a replica's row: what a graceful shutdown calls. */
  removeReplica(replicaId: string): Promise<void>;
  /**
   * Every registered replica by id; `live` when its last heartbeat is less than `staleAfterMs` old.
   */
  listReplicas(staleAfterMs: number): Promise<ReplicaRecord[]>;
}

/** Longest lease or replica name accepted: ids and group-derived names are far shorter. */
export const MAX_LEASE_NAME_LENGTH = 200;
/** Longest lease a caller may ask for: a day. A dead holder's duties wait at most this long. */
export const MAX_LEASE_TTL_MS = 86_400_000;

/** Throws ArgumentError unless `value` is a non-empty name of at most MAX_LEASE_NAME_LENGTH. */
export function checkLeaseName(what: string, value: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LEASE_NAME_LENGTH)
    throw new ArgumentError(
      `${what} must be a non-empty string of at most ${MAX_LEASE_NAME_LENGTH} characters, got ${JSON.stringify(value)}`,
    );
  return value;
}

/** Throws ArgumentError unless `ms` is a whole number of milliseconds in 1..max. */
export function checkDurationMs(what: string, ms: number, max = MAX_LEASE_TTL_MS): number {
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > max)
    throw new ArgumentError(`${what} must be a whole number of milliseconds from 1 to ${max}, got ${ms}`);
  return ms;
}
