import type { MigrationInterface, QueryRunner } from 'typeorm';
import { conversationsDown, conversationsUp, type ConversationsDdl } from '../conversations-copy.js';

/**
 * One `conversations` table for 1:1 sessions and N-way groups (issue 11), as the Postgres migration
 * of the same name; see conversations-copy.ts. Epoch stays text (lossless above 2^53).
 */
const DDL: ConversationsDdl = {
  createConversations: `CREATE TABLE "conversations" ("group_id" text PRIMARY KEY NOT NULL, "kind" text NOT NULL, "state" blob NOT NULL, "epoch" text NOT NULL, "version" integer NOT NULL, "updated_at" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT (0), "peer_id" text, "initiated_unconfirmed" boolean, "inbound_access_current" blob, "inbound_access_previous" blob, "messages_since_commit" integer, "unconfirmed_outgoing" text, "unused_since" integer, "topic_id" text, "meta" text, CONSTRAINT "chk_conversations_kind" CHECK (("kind" = 'direct' AND "peer_id" IS NOT NULL AND "initiated_unconfirmed" IS NOT NULL AND "inbound_access_current" IS NOT NULL AND "messages_since_commit" IS NOT NULL AND "unconfirmed_outgoing" IS NOT NULL AND "topic_id" IS NULL AND "meta" IS NULL) OR ("kind" = 'group' AND "topic_id" IS NOT NULL AND "meta" IS NOT NULL AND "peer_id" IS NULL)))`,
  createSessions: `CREATE TABLE "sessions" ("group_id" text PRIMARY KEY NOT NULL, "peer_id" text NOT NULL, "state" blob NOT NULL, "epoch" text NOT NULL, "version" integer NOT NULL, "initiated_unconfirmed" boolean NOT NULL, "inbound_access_current" blob NOT NULL, "inbound_access_previous" blob, "messages_since_commit" integer NOT NULL, "unconfirmed_outgoing" text NOT NULL, "updated_at" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT (0), "unused_since" integer)`,
  createGroups: `CREATE TABLE "groups" ("group_id" text PRIMARY KEY NOT NULL, "topic_id" text NOT NULL, "state" blob NOT NULL, "epoch" text NOT NULL, "meta" text NOT NULL, "updated_at" integer NOT NULL, "version" integer NOT NULL, "at_rest" smallint NOT NULL DEFAULT (0))`,
};

export class Conversations1796640000000 implements MigrationInterface {
  name = 'Conversations1796640000000';

  up(q: QueryRunner): Promise<void> {
    return conversationsUp(q, DDL);
  }

  down(q: QueryRunner): Promise<void> {
    return conversationsDown(q, DDL);
  }
}
