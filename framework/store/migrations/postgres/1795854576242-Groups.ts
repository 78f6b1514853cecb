import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * N-way groups (PROTOCOL.md §9) and the outbox's publish-after-ack flag. A separate migration, not
 * an edit of Initial: databases created before groups existed must upgrade in place. Existing outbox
 * rows take the default, which is how they were published until now.
 */
export class Groups1795854576242 implements MigrationInterface {
  name = 'Groups1795854576242';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "groups" ("group_id" text NOT NULL, "topic_id" text NOT NULL, "state" bytea NOT NULL, "epoch" bigint NOT NULL, "meta" text NOT NULL, "updated_at" bigint NOT NULL, "version" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT '0', CONSTRAINT "pk_groups" PRIMARY KEY ("group_id"))`,
    );
    await q.query(`CREATE UNIQUE INDEX "idx_groups_topic_id" ON "groups" ("topic_id")`);
    await q.query(`ALTER TABLE "outbox" ADD "await_ack" boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "outbox" DROP COLUMN "await_ack"`);
    await q.query(`DROP TABLE "groups"`);
  }
}
