import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * N-way groups (PROTOCOL.md §9) and the outbox's publish-after-ack flag, as an upgrade of databases
 * made by Initial. ADD COLUMN rather than TypeORM's usual table rebuild: the outbox keeps its rows
 * and its AUTOINCREMENT counter, so replay order survives the upgrade.
 */
export class Groups1795854576242 implements MigrationInterface {
  name = 'Groups1795854576242';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "groups" ("group_id" text PRIMARY KEY NOT NULL, "topic_id" text NOT NULL, "state" blob NOT NULL, "epoch" text NOT NULL, "meta" text NOT NULL, "updated_at" integer NOT NULL, "version" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT (0))`,
    );
    await q.query(`CREATE UNIQUE INDEX "idx_groups_topic_id" ON "groups" ("topic_id")`);
    await q.query(`ALTER TABLE "outbox" ADD COLUMN "await_ack" boolean NOT NULL DEFAULT (0)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "await_ack"`);
    await q.query(`DROP TABLE "groups"`);
  }
}
