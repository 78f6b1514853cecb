/**
 * The data half of the Conversations migration, shared by both backends (only the DDL differs).
 *
 * Layout: the columns every conversation has (state, epoch, version, updated_at, at_rest) once, and
 * each kind's own columns as nullable columns rather than a JSON blob, because
 * - peer_id and topic_id must stay indexed (getSessionByPeer, getGroupByTopic);
 * - the sealed columns are sealed one by one, each under its own slot, and copying them column for
 *   column moves them byte for byte: the migration needs no state key and the ciphertexts stay as
 *   strong as before. Their slots keep naming the old table of their kind ('sessions' or 'groups',
 *   mapping.ts), which also keeps a 1:1 row's sealed state from opening as a group's.
 *
 * processed, conversation_data and the outbox name a conversation by its group id without a foreign
 * key; the ids do not change, so nothing else needs rewriting. The migrations run in one
 * transaction: a group id present in both old tables fails the primary key and changes nothing.
 */
import type { QueryRunner } from 'typeorm';

export interface ConversationsDdl {
  createConversations: string;
  /** The old tables as the migrations before this one left them, for down(). */
  createSessions: string;
  createGroups: string;
}

const COMMON = ['group_id', 'state', 'epoch', 'version', 'updated_at', 'at_rest'];
const DIRECT = [
  'peer_id',
  'initiated_unconfirmed',
  'inbound_access_current',
  'inbound_access_previous',
  'messages_since_commit',
  'unconfirmed_outgoing',
  'unused_since',
];
const GROUP = ['topic_id', 'meta'];

const list = (columns: string[]) => columns.map((c) => `"${c}"`).join(', ');

async function createIndexes(q: QueryRunner): Promise<void> {
  await q.query(`CREATE INDEX "idx_conversations_peer_id" ON "conversations" ("peer_id")`);
  // Unique because the topic id is derived from the group id; NULL (1:1 rows) never collides.
  await q.query(`CREATE UNIQUE INDEX "idx_conversations_topic_id" ON "conversations" ("topic_id")`);
}

export async function conversationsUp(q: QueryRunner, ddl: ConversationsDdl): Promise<void> {
  await q.query(ddl.createConversations);
  const direct = [...COMMON, ...DIRECT];
  const group = [...COMMON, ...GROUP];
  await q.query(
    `INSERT INTO "conversations" ("kind", ${list(direct)}) SELECT 'direct', ${list(direct)} FROM "sessions"`,
  );
  await q.query(
    `INSERT INTO "conversations" ("kind", ${list(group)}) SELECT 'group', ${list(group)} FROM "groups"`,
  );
  await q.query(`DROP TABLE "sessions"`);
  await q.query(`DROP TABLE "groups"`);
  await createIndexes(q);
}

export async function conversationsDown(q: QueryRunner, ddl: ConversationsDdl): Promise<void> {
  await q.query(ddl.createSessions);
  await q.query(ddl.createGroups);
  const direct = [...COMMON, ...DIRECT];
  const group = [...COMMON, ...GROUP];
  await q.query(
    `INSERT INTO "sessions" (${list(direct)}) SELECT ${list(direct)} FROM "conversations" WHERE "kind" = 'direct'`,
  );
  await q.query(
    `INSERT INTO "groups" (${list(group)}) SELECT ${list(group)} FROM "conversations" WHERE "kind" = 'group'`,
  );
  await q.query(`DROP TABLE "conversations"`);
  await q.query(`CREATE INDEX "idx_sessions_peer_id" ON "sessions" ("peer_id")`);
  await q.query(`CREATE UNIQUE INDEX "idx_groups_topic_id" ON "groups" ("topic_id")`);
}
