import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbox quarantine (issue 10), as the Postgres migration of the same name. ADD COLUMN rather than
 * TypeORM's usual table rebuild: the outbox keeps its rows and its AUTOINCREMENT counter.
 */
export class OutboxQuarantine1796622191638 implements MigrationInterface {
  name = 'OutboxQuarantine1796622191638';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" ADD COLUMN "quarantined_at" integer`);
    await q.query(`ALTER TABLE "outbox" ADD COLUMN "depends_on" text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "depends_on"`);
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "quarantined_at"`);
  }
}
