import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbox ownership (issue 13): each row names the replica that committed it, so a replica reads back
 * only its own rows (and rows of no replica) and the outbox-orphans duty can claim a dead one's.
 * Existing rows take NULL: rows of no replica, published by whoever reads back first.
 */
export class OutboxOwner1796668800000 implements MigrationInterface {
  name = 'OutboxOwner1796668800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" ADD "replica" text`);
    await q.query(`CREATE INDEX "idx_outbox_replica" ON "outbox" ("replica") `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX "idx_outbox_replica"`);
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "replica"`);
  }
}
