import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Flow control and session expiry (PROTOCOL.md §10): inbound messages parked so that their PUBACK
 * need not wait for a slow handler, and the time a session was set up while its peer has not used
 * it. Existing sessions get NULL: whether their peer ever wrote is unknown, so they never expire.
 */
export class ParkedInbound1796621651928 implements MigrationInterface {
  name = 'ParkedInbound1796621651928';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "parked_inbound" ("seq" BIGSERIAL NOT NULL, "id" text NOT NULL, "topic" text NOT NULL, "payload" bytea NOT NULL, "arrived_at" bigint NOT NULL, CONSTRAINT "uq_parked_inbound_id" UNIQUE ("id"), CONSTRAINT "pk_parked_inbound" PRIMARY KEY ("seq"))`,
    );
    await q.query(`ALTER TABLE "sessions" ADD "unused_since" bigint`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "sessions" DROP COLUMN "unused_since"`);
    await q.query(`DROP TABLE "parked_inbound"`);
  }
}
