import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Flow control and session expiry (PROTOCOL.md §10): inbound messages parked so that their PUBACK
 * need not wait for a slow handler, and the time a session was set up while its peer has not used
 * it. ADD COLUMN rather than a table rebuild: existing sessions keep their rows and get NULL, as
 * whether their peer ever wrote is unknown, so they never expire.
 */
export class ParkedInbound1796621651928 implements MigrationInterface {
  name = 'ParkedInbound1796621651928';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "parked_inbound" ("seq" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "id" text NOT NULL, "topic" text NOT NULL, "payload" blob NOT NULL, "arrived_at" integer NOT NULL, CONSTRAINT "uq_parked_inbound_id" UNIQUE ("id"))`,
    );
    await q.query(`ALTER TABLE "sessions" ADD COLUMN "unused_since" integer`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "sessions" DROP COLUMN "unused_since"`);
    await q.query(`DROP TABLE "parked_inbound"`);
  }
}
