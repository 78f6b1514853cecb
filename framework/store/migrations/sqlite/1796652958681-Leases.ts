import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Leases and the replica registry (issue 13), as the Postgres migration of the same name. On SQLite
 * there is one process (the file lock refuses a second), so the leases only ever have one holder;
 * the tables exist so the same code runs on both backends.
 */
export class Leases1796652958681 implements MigrationInterface {
  name = 'Leases1796652958681';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "leases" ("name" text PRIMARY KEY NOT NULL, "holder" text NOT NULL, "acquired_at" integer NOT NULL, "expires_at" integer NOT NULL)`,
    );
    await q.query(`CREATE INDEX "idx_leases_holder" ON "leases" ("holder") `);
    await q.query(
      `CREATE TABLE "replicas" ("replica_id" text PRIMARY KEY NOT NULL, "host" text, "pid" integer, "started_at" integer NOT NULL, "last_seen" integer NOT NULL)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "replicas"`);
    await q.query(`DROP INDEX "idx_leases_holder"`);
    await q.query(`DROP TABLE "leases"`);
  }
}
