import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The state-key record (relay_meta: scrypt salt and parameters, key check) and an at_rest flag for
 * conversation_data, now sealed like the other secret columns. Rows keep their values: a keyed
 * store re-seals a database sealed before this migration on its first open (state-key-store.ts).
 */
export class StateKey1796621877627 implements MigrationInterface {
  name = 'StateKey1796621877627';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "relay_meta" ("key" text NOT NULL, "value" text NOT NULL, CONSTRAINT "pk_relay_meta" PRIMARY KEY ("key"))`,
    );
    await q.query(`ALTER TABLE "conversation_data" ADD "at_rest" smallint NOT NULL DEFAULT '0'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "conversation_data" DROP COLUMN "at_rest"`);
    await q.query(`DROP TABLE "relay_meta"`);
  }
}
