import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Epoch is text: SQLite integers would come back as lossy JS numbers above 2^53. */
export class Initial1795846949665 implements MigrationInterface {
  name = 'Initial1795846949665';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "identities" ("id" integer PRIMARY KEY NOT NULL, "signing_seed" blob NOT NULL, "seal_secret" blob NOT NULL, "created_at" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT (0))`,
    );
    await q.query(
      `CREATE TABLE "key_packages" ("ref" text PRIMARY KEY NOT NULL, "key_package" blob NOT NULL, "private_key_package" blob NOT NULL, "created_at" integer NOT NULL, "not_after" integer NOT NULL, "consumed_at" integer, "superseded_at" integer, "at_rest" smallint NOT NULL DEFAULT (0))`,
    );
    await q.query(
      `CREATE TABLE "own_bundle" ("id" integer PRIMARY KEY NOT NULL, "bytes" blob NOT NULL, "issued_at" integer NOT NULL, "key_package_ref" text NOT NULL)`,
    );
    await q.query(
      `CREATE TABLE "peers" ("user_id" text PRIMARY KEY NOT NULL, "identity_key" blob NOT NULL, "seal_key" blob NOT NULL, "pow_bits" integer NOT NULL, "bundle_issued_at" integer, "display_name" text)`,
    );
    await q.query(
      `CREATE TABLE "sessions" ("group_id" text PRIMARY KEY NOT NULL, "peer_id" text NOT NULL, "state" blob NOT NULL, "epoch" text NOT NULL, "version" integer NOT NULL, "initiated_unconfirmed" boolean NOT NULL, "inbound_access_current" blob NOT NULL, "inbound_access_previous" blob, "messages_since_commit" integer NOT NULL, "unconfirmed_outgoing" text NOT NULL, "updated_at" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT (0))`,
    );
    await q.query(`CREATE INDEX "idx_sessions_peer_id" ON "sessions" ("peer_id")`);
    await q.query(
      `CREATE TABLE "processed" ("group_id" text NOT NULL, "digest" text NOT NULL, "at" integer NOT NULL, PRIMARY KEY ("group_id", "digest"))`,
    );
    await q.query(`CREATE INDEX "idx_processed_at" ON "processed" ("at")`);
    await q.query(
      `CREATE TABLE "envelopes" ("digest" text PRIMARY KEY NOT NULL, "expires_at" integer NOT NULL)`,
    );
    await q.query(`CREATE INDEX "idx_envelopes_expires_at" ON "envelopes" ("expires_at")`);
    await q.query(`CREATE TABLE "welcomes" ("digest" text PRIMARY KEY NOT NULL, "at" integer NOT NULL)`);
    await q.query(`CREATE INDEX "idx_welcomes_at" ON "welcomes" ("at")`);
    // AUTOINCREMENT: seq keeps rising over the table's whole life, never reusing a flushed row's number.
    await q.query(
      `CREATE TABLE "outbox" ("seq" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "id" text NOT NULL, "topic" text NOT NULL, "payload" blob NOT NULL, "retain" boolean, "message_expiry_seconds" integer, "created_at" integer NOT NULL, CONSTRAINT "uq_outbox_id" UNIQUE ("id"))`,
    );
    await q.query(
      `CREATE TABLE "conversation_data" ("conversation_id" text PRIMARY KEY NOT NULL, "json" text NOT NULL)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of [
      'conversation_data',
      'outbox',
      'welcomes',
      'envelopes',
      'processed',
      'sessions',
      'peers',
      'own_bundle',
      'key_packages',
      'identities',
    ]) {
      await q.query(`DROP TABLE "${table}"`);
    }
  }
}
