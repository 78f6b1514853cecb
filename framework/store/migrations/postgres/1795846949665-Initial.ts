import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Table names are unqualified on purpose: the DataSource sets search_path to its schema, so the
 * same migration serves the default schema and the per-run schemas of the test suite.
 */
export class Initial1795846949665 implements MigrationInterface {
  name = 'Initial1795846949665';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE "identities" ("id" integer NOT NULL, "signing_seed" bytea NOT NULL, "seal_secret" bytea NOT NULL, "created_at" bigint NOT NULL, "at_rest" smallint NOT NULL DEFAULT '0', CONSTRAINT "pk_identities" PRIMARY KEY ("id"))`,
    );
    await q.query(
      `CREATE TABLE "key_packages" ("ref" text NOT NULL, "key_package" bytea NOT NULL, "private_key_package" bytea NOT NULL, "created_at" bigint NOT NULL, "not_after" bigint NOT NULL, "consumed_at" bigint, "superseded_at" bigint, "at_rest" smallint NOT NULL DEFAULT '0', CONSTRAINT "pk_key_packages" PRIMARY KEY ("ref"))`,
    );
    await q.query(
      `CREATE TABLE "own_bundle" ("id" integer NOT NULL, "bytes" bytea NOT NULL, "issued_at" bigint NOT NULL, "key_package_ref" text NOT NULL, CONSTRAINT "pk_own_bundle" PRIMARY KEY ("id"))`,
    );
    await q.query(
      `CREATE TABLE "peers" ("user_id" text NOT NULL, "identity_key" bytea NOT NULL, "seal_key" bytea NOT NULL, "pow_bits" integer NOT NULL, "bundle_issued_at" bigint, "display_name" text, CONSTRAINT "pk_peers" PRIMARY KEY ("user_id"))`,
    );
    await q.query(
      `CREATE TABLE "sessions" ("group_id" text NOT NULL, "peer_id" text NOT NULL, "state" bytea NOT NULL, "epoch" bigint NOT NULL, "version" integer NOT NULL, "initiated_unconfirmed" boolean NOT NULL, "inbound_access_current" bytea NOT NULL, "inbound_access_previous" bytea, "messages_since_commit" integer NOT NULL, "unconfirmed_outgoing" text NOT NULL, "updated_at" bigint NOT NULL, "at_rest" smallint NOT NULL DEFAULT '0', CONSTRAINT "pk_sessions" PRIMARY KEY ("group_id"))`,
    );
    await q.query(`CREATE INDEX "idx_sessions_peer_id" ON "sessions" ("peer_id")`);
    await q.query(
      `CREATE TABLE "processed" ("group_id" text NOT NULL, "digest" text NOT NULL, "at" bigint NOT NULL, CONSTRAINT "pk_processed" PRIMARY KEY ("group_id", "digest"))`,
    );
    await q.query(`CREATE INDEX "idx_processed_at" ON "processed" ("at")`);
    await q.query(
      `CREATE TABLE "envelopes" ("digest" text NOT NULL, "expires_at" bigint NOT NULL, CONSTRAINT "pk_envelopes" PRIMARY KEY ("digest"))`,
    );
    await q.query(`CREATE INDEX "idx_envelopes_expires_at" ON "envelopes" ("expires_at")`);
    await q.query(
      `CREATE TABLE "welcomes" ("digest" text NOT NULL, "at" bigint NOT NULL, CONSTRAINT "pk_welcomes" PRIMARY KEY ("digest"))`,
    );
    await q.query(`CREATE INDEX "idx_welcomes_at" ON "welcomes" ("at")`);
    await q.query(
      `CREATE TABLE "outbox" ("seq" BIGSERIAL NOT NULL, "id" text NOT NULL, "topic" text NOT NULL, "payload" bytea NOT NULL, "retain" boolean, "message_expiry_seconds" integer, "created_at" bigint NOT NULL, CONSTRAINT "uq_outbox_id" UNIQUE ("id"), CONSTRAINT "pk_outbox" PRIMARY KEY ("seq"))`,
    );
    await q.query(
      `CREATE TABLE "conversation_data" ("conversation_id" text NOT NULL, "json" text NOT NULL, CONSTRAINT "pk_conversation_data" PRIMARY KEY ("conversation_id"))`,
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
