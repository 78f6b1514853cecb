/**
 * LeaseStore on the relay database (Postgres or SQLite): the `leases` and `replicas` tables. Every
 * operation is one statement, so taking an expired lease over is atomic without explicit locks:
 * the conditional upsert either changes the row or returns nothing. Time is the database's clock
 * (one clock for every replica, whatever their own clocks say).
 */
import type { DataSource } from 'typeorm';
import { ArgumentError } from '../relay/errors.js';
import {
  checkDurationMs,
  checkLeaseName,
  type LeaseRecord,
  type LeaseStore,
  type ReplicaInfo,
  type ReplicaRecord,
} from '../relay/lease-store.js';
import type { RelayBackend } from './entities.js';
import { toBool, toInt, type Row } from './mapping.js';
import { backendOf, type Sql } from './sql.js';
import { SqlRunner } from './sql-runner.js';

/** Runs one unit of work on a query runner; see TypeOrmLeaseStore's constructor. */
export type LeaseSqlRunner = <T>(fn: () => Promise<T>) => Promise<T>;

/**
 * The database clock in ms since the epoch. Postgres now() is fixed for the statement, as is
 * SQLite's 'now' within one step, so every use in one statement agrees.
 */
const NOW_MS: Record<RelayBackend, string> = {
  postgres: `(FLOOR(EXTRACT(EPOCH FROM now()) * 1000)::bigint)`,
  sqlite: `CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)`,
};

const LEASE_COLUMNS = `"name", "holder", "acquired_at", "expires_at"`;

/** The statements of one backend. */
function statements(backend: RelayBackend) {
  const now = NOW_MS[backend];
  // The WHERE of DO UPDATE is the whole takeover rule: ours already, or expired.
  const acquireSql = (count: number): string =>
    `INSERT INTO "leases" (${LEASE_COLUMNS}) VALUES ` +
    Array.from({ length: count }, () => `(?, ?, ${now}, ${now} + ?)`).join(', ') +
    ` ON CONFLICT ("name") DO UPDATE SET "holder" = excluded."holder", ` +
    `"acquired_at" = CASE WHEN "leases"."holder" = excluded."holder" AND "leases"."expires_at" > excluded."acquired_at" ` +
    `THEN "leases"."acquired_at" ELSE excluded."acquired_at" END, "expires_at" = excluded."expires_at" ` +
    `WHERE "leases"."holder" = excluded."holder" OR "leases"."expires_at" <= excluded."acquired_at" ` +
    `RETURNING ${LEASE_COLUMNS}`;
  return {
    acquire: acquireSql(1),
    /** acquire for `count` names in one statement (acquireLeases). */
    acquireMany: acquireSql,
    renew:
      `UPDATE "leases" SET "expires_at" = ${now} + ? ` +
      `WHERE "name" = ? AND "holder" = ? AND "expires_at" > ${now} RETURNING ${LEASE_COLUMNS}`,
    release: `DELETE FROM "leases" WHERE "name" = ? AND "holder" = ?`,
    releaseAll: `DELETE FROM "leases" WHERE "holder" = ? RETURNING "name"`,
    list: `SELECT ${LEASE_COLUMNS}, ("expires_at" > ${now}) AS "live" FROM "leases" ORDER BY "name"`,
    register:
      `INSERT INTO "replicas" ("replica_id", "host", "pid", "started_at", "last_seen") ` +
      `VALUES (?, ?, ?, ${now}, ${now}) ON CONFLICT ("replica_id") DO UPDATE SET "host" = excluded."host", ` +
      `"pid" = excluded."pid", "started_at" = excluded."started_at", "last_seen" = excluded."last_seen"`,
    heartbeat: `UPDATE "replicas" SET "last_seen" = ${now} WHERE "replica_id" = ?`,
    remove: `DELETE FROM "replicas" WHERE "replica_id" = ?`,
    replicas:
      `SELECT "replica_id", "host", "pid", "started_at", "last_seen", ("last_seen" > ${now} - ?) AS "live" ` +
      `FROM "replicas" ORDER BY "replica_id"`,
  };
}

const rowToLease = (r: Row, live = toBool(r.live)): LeaseRecord => ({
  name: String(r.name),
  holder: String(r.holder),
  acquiredAt: toInt(r.acquired_at),
  expiresAt: toInt(r.expires_at),
  live,
});

const rowToReplica = (r: Row): ReplicaRecord => ({
  replicaId: String(r.replica_id),
  ...(r.host !== null && r.host !== undefined ? { host: String(r.host) } : {}),
  ...(r.pid !== null && r.pid !== undefined ? { pid: toInt(r.pid) } : {}),
  startedAt: toInt(r.started_at),
  lastSeen: toInt(r.last_seen),
  live: toBool(r.live),
});

/** LeaseStore on a relay DataSource (migrated: the Leases migration creates its tables). */
export class TypeOrmLeaseStore implements LeaseStore {
  private readonly backend: RelayBackend;
  private readonly sql: ReturnType<typeof statements>;
  private readonly runner: SqlRunner;

  /**
   * `serial` must be the serialiser of any TypeOrmRelayStore on the same SQLite DataSource (use that
   * store's `leases`): SQLite has one shared connection, and a lease statement slipping into the
   * store's open transaction would commit or roll back with it. Without one, SQLite statements
   * are serialised here and Postgres statements run as they come.
   */
  constructor(ds: DataSource, serial?: LeaseSqlRunner) {
    this.backend = backendOf(ds);
    this.sql = statements(this.backend);
    this.runner = new SqlRunner(ds, this.backend, serial);
  }

  private run<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.runner.once(fn);
  }

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<LeaseRecord | undefined> {
    const params = [checkLeaseName('lease name', name), checkLeaseName('lease holder', holder)];
    const ttl = checkDurationMs('lease ttlMs', ttlMs);
    const rows = await this.run((s) => s.rows(this.sql.acquire, [...params, ttl]));
    return rows[0] ? rowToLease(rows[0], true) : undefined;
  }

  async acquireLeases(names: readonly string[], holder: string, ttlMs: number): Promise<LeaseRecord[]> {
    if (names.length === 0) return [];
    checkLeaseName('lease holder', holder);
    const ttl = checkDurationMs('lease ttlMs', ttlMs);
    if (new Set(names).size !== names.length)
      throw new ArgumentError(`acquireLeases needs distinct names, got ${JSON.stringify(names)}`);
    const params = names.flatMap((name) => [checkLeaseName('lease name', name), holder, ttl]);
    const rows = await this.run((s) => s.rows(this.sql.acquireMany(names.length), params));
    return rows.map((r) => rowToLease(r, true));
  }

  async renewLease(name: string, holder: string, ttlMs: number): Promise<LeaseRecord | undefined> {
    const ttl = checkDurationMs('lease ttlMs', ttlMs);
    const rows = await this.run((s) => s.rows(this.sql.renew, [ttl, name, holder]));
    return rows[0] ? rowToLease(rows[0], true) : undefined;
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    return (await this.run((s) => s.run(this.sql.release, [name, holder]))) > 0;
  }

  async releaseAll(holder: string): Promise<string[]> {
    const rows = await this.run((s) => s.rows(this.sql.releaseAll, [holder]));
    return rows.map((r) => String(r.name)).sort();
  }

  async listLeases(): Promise<LeaseRecord[]> {
    return (await this.run((s) => s.rows(this.sql.list))).map((r) => rowToLease(r));
  }

  async registerReplica(info: ReplicaInfo): Promise<void> {
    checkLeaseName('replicaId', info.replicaId);
    await this.run((s) => s.run(this.sql.register, [info.replicaId, info.host, info.pid]));
  }

  async heartbeatReplica(replicaId: string): Promise<boolean> {
    return (await this.run((s) => s.run(this.sql.heartbeat, [replicaId]))) > 0;
  }

  async removeReplica(replicaId: string): Promise<void> {
    await this.run((s) => s.run(this.sql.remove, [replicaId]));
  }

  async listReplicas(staleAfterMs: number): Promise<ReplicaRecord[]> {
    const stale = checkDurationMs('staleAfterMs', staleAfterMs);
    return (await this.run((s) => s.rows(this.sql.replicas, [stale]))).map(rowToReplica);
  }
}
