import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The sender index of PROTOCOL.md §8 (issue 14): who sent each recent message id in a conversation,
 * so an edit, a delete or a stream part from anyone else is dropped. `seq` orders the entries of a
 * conversation for the per-conversation bound; `at` is what prune() expires by.
 */
export class MessageSenders1796700000000 implements MigrationInterface {
  name = 'MessageSenders1796700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "message_senders" ("seq" BIGSERIAL NOT NULL, "group_id" text NOT NULL, "message_id" text NOT NULL, "sender" text NOT NULL, "at" bigint NOT NULL, CONSTRAINT "uq_message_senders_id" UNIQUE ("group_id", "message_id"), CONSTRAINT "pk_message_senders" PRIMARY KEY ("seq"))`,
    );
    await q.query(`CREATE INDEX "idx_message_senders_group_seq" ON "message_senders" ("group_id", "seq") `);
    await q.query(`CREATE INDEX "idx_message_senders_at" ON "message_senders" ("at") `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX "idx_message_senders_at"`);
    await q.query(`DROP INDEX "idx_message_senders_group_seq"`);
    await q.query(`DROP TABLE "message_senders"`);
  }
}
