/**
 * The SQL text the TypeORM store runs outside the compare-and-set path: upserts and selects built
 * once from column lists, portable between Postgres and SQLite (`?` placeholders, sql.ts numbers
 * them for Postgres).
 */
import { CONVERSATION_COLUMNS, SESSION_ACCESS_COLUMNS, GROUP_SUMMARY_COLUMNS } from './conversation-rows.js';
import { OUTBOX_COLUMNS, PARKED_COLUMNS, PEER_COLUMNS } from './mapping.js';
import { placeholders } from './sql.js';

/** `"a", "b", "c"`: quoted column names. */
export const columnList = (columns: readonly string[]): string => columns.map((c) => `"${c}"`).join(', ');

/** `(?, ?), (?, ?)`: the VALUES list of `rows` rows of `width` columns. */
export const valueRows = (rows: number, width: number): string =>
  Array.from({ length: rows }, () => `(${placeholders(width)})`).join(', ');

/**
 * `INSERT … ON CONFLICT (key) DO UPDATE` for every non-key column, of `rows` rows at once; valid in
 * Postgres and SQLite. The rows of one statement must have distinct keys (Postgres refuses to
 * update a row twice in one statement).
 */
function upsertSql(table: string, key: string[], columns: readonly string[], rows = 1): string {
  const all = [...key, ...columns];
  const set = columns.map((c) => `"${c}" = excluded."${c}"`).join(', ');
  return `INSERT INTO "${table}" (${columnList(all)}) VALUES ${valueRows(rows, all.length)} ON CONFLICT (${columnList(key)}) DO UPDATE SET ${set}`;
}

/** PEER_UPSERT for `rows` peers with distinct user ids. */
export const peerUpsertRows = (rows: number): string =>
  upsertSql(
    'peers',
    ['user_id'],
    PEER_COLUMNS.filter((c) => c !== 'user_id'),
    rows,
  );

/** CONVERSATION_DATA_UPSERT for `rows` entries with distinct conversation ids. */
export const conversationDataUpsertRows = (rows: number): string =>
  upsertSql('conversation_data', ['conversation_id'], ['json', 'at_rest'], rows);

/** OUTBOX_INSERT for `rows` rows; they take their seq in the order listed. */
export const outboxInsertRows = (rows: number): string =>
  `INSERT INTO "outbox" (${columnList(OUTBOX_COLUMNS)}) VALUES ${valueRows(rows, OUTBOX_COLUMNS.length)}`;

export const IDENTITY_UPSERT = upsertSql(
  'identities',
  ['id'],
  ['signing_seed', 'seal_secret', 'created_at', 'at_rest'],
);
export const KEY_PACKAGE_UPSERT = upsertSql(
  'key_packages',
  ['ref'],
  [
    'key_package',
    'private_key_package',
    'created_at',
    'not_after',
    'consumed_at',
    'superseded_at',
    'at_rest',
  ],
);
export const OWN_BUNDLE_UPSERT = upsertSql('own_bundle', ['id'], ['bytes', 'issued_at', 'key_package_ref']);
export const PEER_UPSERT = upsertSql(
  'peers',
  ['user_id'],
  PEER_COLUMNS.filter((c) => c !== 'user_id'),
);
// Upsert, not insert-or-ignore: MemoryRelayStore overwrites `at`, and `at` decides when prune drops it.
export const PROCESSED_UPSERT = upsertSql('processed', ['group_id', 'digest'], ['at']);
export const ENVELOPE_UPSERT = upsertSql('envelopes', ['digest'], ['expires_at']);
export const WELCOME_UPSERT = upsertSql('welcomes', ['digest'], ['at']);
export const CONVERSATION_DATA_UPSERT = upsertSql(
  'conversation_data',
  ['conversation_id'],
  ['json', 'at_rest'],
);
export const OUTBOX_INSERT = `INSERT INTO "outbox" (${columnList(OUTBOX_COLUMNS)}) VALUES (${placeholders(OUTBOX_COLUMNS.length)})`;
export const OUTBOX_SELECT = `SELECT ${columnList(OUTBOX_COLUMNS)} FROM "outbox" WHERE "quarantined_at" IS NULL ORDER BY "seq" LIMIT ?`;
/** One replica's rows and rows of no replica (OutboxRecord.replica). */
export const OUTBOX_SELECT_OF_REPLICA = `SELECT ${columnList(OUTBOX_COLUMNS)} FROM "outbox"
  WHERE "quarantined_at" IS NULL AND ("replica" = ? OR "replica" IS NULL) ORDER BY "seq" LIMIT ?`;
export const OUTBOX_OWNERS = `SELECT DISTINCT "replica" FROM "outbox"
  WHERE "replica" IS NOT NULL AND "quarantined_at" IS NULL ORDER BY "replica"`;
/** One statement: atomic on its own, so two claimers never split or duplicate a replica's rows. */
export const OUTBOX_CLAIM = `UPDATE "outbox" SET "replica" = ? WHERE "replica" = ? AND "quarantined_at" IS NULL`;
export const OUTBOX_QUARANTINE = `UPDATE "outbox" SET "quarantined_at" = ?
  WHERE ("id" = ? OR "depends_on" = ?) AND "quarantined_at" IS NULL`;
/** Each kind's reads; callers append `AND …` conditions and ordering. */
export const SESSION_SELECT = `SELECT * FROM "conversations" WHERE "kind" = 'direct'`;
export const SESSION_ACCESS_SELECT = `SELECT ${columnList(SESSION_ACCESS_COLUMNS)} FROM "conversations" WHERE "kind" = 'direct' ORDER BY "group_id"`;
export const GROUP_SUMMARY_SELECT = `SELECT ${columnList(GROUP_SUMMARY_COLUMNS)} FROM "conversations" WHERE "kind" = 'group' ORDER BY "group_id"`;
export const GROUP_SELECT = `SELECT * FROM "conversations" WHERE "kind" = 'group'`;
export const PARKED_INSERT = `INSERT INTO "parked_inbound" (${columnList(PARKED_COLUMNS)}) VALUES (${placeholders(PARKED_COLUMNS.length)})`;
export const PARKED_SELECT = `SELECT ${columnList(PARKED_COLUMNS)} FROM "parked_inbound" ORDER BY "seq" LIMIT ?`;
/** The peer's columns of a message load, prefixed `p_` (from the join alias `p`). */
export const PEER_COLUMNS_AS_P = PEER_COLUMNS.map((c) => `p."${c}" AS "p_${c}"`).join(', ');
/** The state columns a message load skips when the caller holds the row's version (issue #12). */
const HELD_STATE_COLUMNS: ReadonlySet<string> = new Set(['state', 'epoch_state']);

/**
 * The conversation columns of a message load (alias `c`), the state columns NULL when the row's
 * version is `held`: the caller holds that version's state, and a group's is 100+ KB a read.
 * A NULL `held` (nothing held) never equals, so everything is read.
 */
export const conversationColumnsHolding = (held: string): string =>
  ['group_id', 'version', ...CONVERSATION_COLUMNS]
    .map((col) =>
      HELD_STATE_COLUMNS.has(col)
        ? `CASE WHEN c."version" = ${held} THEN NULL ELSE c."${col}" END AS "${col}"`
        : `c."${col}"`,
    )
    .join(', ');

/**
 * loadConversationForMessage: the conversation row of either kind (its state columns NULL when
 * its version is the held one), the peer's row of a 1:1 conversation (columns prefixed `p_`; none
 * for a group), the processed check and the envelope replay check (params: held version or null
 * twice, group id, digest, envelope digest or null, now, group id).
 */
export const MESSAGE_LOAD_SELECT = `SELECT ${conversationColumnsHolding('CAST(? AS INTEGER)')}, ${PEER_COLUMNS_AS_P},
  EXISTS (SELECT 1 FROM "processed" WHERE "group_id" = ? AND "digest" = ?) AS "processed_hit",
  EXISTS (SELECT 1 FROM "envelopes" WHERE "digest" = ? AND "expires_at" >= ?) AS "envelope_hit"
  FROM "conversations" c LEFT JOIN "peers" p ON p."user_id" = c."peer_id" WHERE c."group_id" = ?`;

/** Sender index (PROTOCOL.md §8): the first entry for an id wins. */
export const MESSAGE_SENDER_INSERT = `INSERT INTO "message_senders" ("group_id", "message_id", "sender", "at") VALUES (?, ?, ?, ?)
  ON CONFLICT ("group_id", "message_id") DO NOTHING`;
/**
 * Keeps a conversation's newest entries: deletes those at or below the one `offset` places below
 * the newest (params: group id, group id, offset).
 */
export const MESSAGE_SENDER_TRIM = `DELETE FROM "message_senders" WHERE "group_id" = ? AND "seq" <= (
  SELECT "seq" FROM "message_senders" WHERE "group_id" = ? ORDER BY "seq" DESC LIMIT 1 OFFSET ?)`;
