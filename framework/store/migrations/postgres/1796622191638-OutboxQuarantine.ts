import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbox quarantine (issue 10): a row that can never be published is marked instead of being
 * retried ahead of every later row, and a Welcome row names the commit row it must follow so that
 * it is set aside with it. Existing rows take NULL in both: not quarantined, no dependency.
 */
export class OutboxQuarantine1796622191638 implements MigrationInterface {
  name = 'OutboxQuarantine1796622191638';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" ADD "quarantined_at" bigint`);
    await q.query(`ALTER TABLE "outbox" ADD "depends_on" text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "depends_on"`);
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "quarantined_at"`);
  }
}
