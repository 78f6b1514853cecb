import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbox ownership (issue 13), as the Postgres migration of the same name. ADD COLUMN rather than
 * TypeORM's usual table rebuild: the outbox keeps its rows and its AUTOINCREMENT counter. On SQLite
 * there is one process, whose rows carry no replica.
 */
export class OutboxOwner1796668800000 implements MigrationInterface {
  name = 'OutboxOwner1796668800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" ADD COLUMN "replica" text`);
    await q.query(`CREATE INDEX "idx_outbox_replica" ON "outbox" ("replica") `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX "idx_outbox_replica"`);
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "replica"`);
  }
}
