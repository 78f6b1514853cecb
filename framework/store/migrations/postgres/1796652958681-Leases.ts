import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Leases and the replica registry (issue 13): one owner at a time for the duties replicas of one
 * identity share, taken over by expiry when a replica dies. Times are ms on the database clock.
 */
export class Leases1796652958681 implements MigrationInterface {
  name = 'Leases1796652958681';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "leases" ("name" text NOT NULL, "holder" text NOT NULL, "acquired_at" bigint NOT NULL, "expires_at" bigint NOT NULL, CONSTRAINT "pk_leases" PRIMARY KEY ("name"))`,
    );
    await q.query(`CREATE INDEX "idx_leases_holder" ON "leases" ("holder") `);
    await q.query(
      `CREATE TABLE "replicas" ("replica_id" text NOT NULL, "host" text, "pid" integer, "started_at" bigint NOT NULL, "last_seen" bigint NOT NULL, CONSTRAINT "pk_replicas" PRIMARY KEY ("replica_id"))`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "replicas"`);
    await q.query(`DROP INDEX "idx_leases_holder"`);
    await q.query(`DROP TABLE "leases"`);
  }
}
