/**
 * A conversation record of a commit as the compare-and-set write sees it (typeorm-commit.ts and
 * folded-commit.ts share it): sealed column values, the version it was read at, the one UPDATE
 * guarded by that version, and why such a write changed no row.
 */
import { StaleStateError, StorageError } from '../relay/errors.js';
import type { ConversationRecord, InboundCommit, MessageSenderRecord } from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import {
  COLUMNS_KEEPING_EPOCH_STATE,
  CONVERSATION_COLUMNS,
  groupParams,
  sessionParams,
  type ConversationKind,
} from './conversation-rows.js';
import { toInt } from './mapping.js';
import { placeholders, type Sql } from './sql.js';
import { columnList } from './statements.js';

export const updateSql = (columns: readonly string[]): string =>
  `UPDATE "conversations" SET ${columns.map((c) => `"${c}" = ?`).join(', ')}, "version" = "version" + 1 WHERE "group_id" = ? AND "version" = ? AND "kind" = ?`;

/**
 * The one compare-and-set write of commit(), for both kinds: "version" must be the one the record
 * was read at, and "kind" must not change under a group id.
 */
export const VERSIONED_SQL = {
  update: updateSql(CONVERSATION_COLUMNS),
  /** A group whose epoch part did not change: its epoch_state stays as stored (issue #12). */
  updateKeepingEpochState: updateSql(COLUMNS_KEEPING_EPOCH_STATE),
  // A concurrent insert of the same conversation must read as a lost race, not as a unique
  // violation. No conflict target: with one on group_id alone, Postgres checks topic_id's unique
  // index outside the conflict handling, and the loser of such a race fails there with a raw violation.
  insert: `INSERT INTO "conversations" ("group_id", ${columnList(CONVERSATION_COLUMNS)}, "version") VALUES (${placeholders(CONVERSATION_COLUMNS.length + 2)}) ON CONFLICT DO NOTHING`,
  version: `SELECT "version", "kind" FROM "conversations" WHERE "group_id" = ?`,
  /** Followed by `(?, …)` and the ordering and lock clauses. */
  versions: `SELECT "group_id", "version", "kind" FROM "conversations" WHERE "group_id" IN`,
  /** Followed by the VALUES rows. */
  insertRows: `INSERT INTO "conversations" ("group_id", ${columnList(CONVERSATION_COLUMNS)}, "version") VALUES`,
  delete: `DELETE FROM "conversations" WHERE "group_id" = ?`,
  deleteSenders: `DELETE FROM "message_senders" WHERE "group_id" = ?`,
};

/** A commit's sender-index entries by conversation, in commit order. */
export function sendersByGroup(c: InboundCommit): Map<string, MessageSenderRecord[]> {
  const out = new Map<string, MessageSenderRecord[]>();
  for (const r of c.messageSenders ?? []) out.set(r.groupId, [...(out.get(r.groupId) ?? []), r]);
  return out;
}

export const senderParams = (r: MessageSenderRecord): unknown[] => [r.groupId, r.messageId, r.sender, r.at];

/** A conversation record of a commit, reduced to what the compare-and-set write needs. */
export interface VersionedRow {
  kind: ConversationKind;
  groupId: string;
  /** The version it was read at (0: must not exist yet). */
  version: number;
  /** CONVERSATION_COLUMNS' values, sealed where secret; without epoch_state when it is kept. */
  values: unknown[];
  /** The stored epoch_state stays: only an UPDATE can keep it (an insert has none to keep). */
  keepsEpochState: boolean;
}

/** Sealed once here, before any statement runs. */
export const versionedRow = (r: ConversationRecord, cipher: AtRestCipher): VersionedRow => ({
  kind: r.kind,
  groupId: r.groupId,
  version: r.version,
  values: r.kind === 'direct' ? sessionParams(r, cipher) : groupParams(r, cipher),
  keepsEpochState: r.kind === 'group' && r.epochStateUnchanged === true,
});

export const updateOf = (row: VersionedRow): string =>
  row.keepsEpochState ? VERSIONED_SQL.updateKeepingEpochState : VERSIONED_SQL.update;

/** Everything the commit writes fits in foldedUpdate's one statement. */
export function foldsCompletely(c: InboundCommit): boolean {
  return (
    (c.outbox?.length ?? 0) <= 1 &&
    (c.peers?.length ?? 0) === 0 &&
    (c.conversationData?.length ?? 0) === 0 &&
    c.welcome === undefined &&
    c.consumedKeyPackage === undefined
  );
}

/**
 * The one conversation of a commit, when it updates a stored row (version > 0: it was read from
 * the store) and the commit deletes none; such a commit needs no separate lock or existence check.
 */
export function soleStoredRow(c: InboundCommit, rows: VersionedRow[]): VersionedRow | undefined {
  if (rows.length !== 1 || (c.deleteConversations?.length ?? 0) > 0) return undefined;
  return rows[0]!.version > 0 ? rows[0] : undefined;
}

/**
 * Why a compare-and-set write changed no row: a newer version, the group id stored as the other
 * kind, or (an insert) a taken topic id.
 */
export async function throwConflict(s: Sql, row: VersionedRow): Promise<never> {
  const found = await s.rows(VERSIONED_SQL.version, [row.groupId]);
  const stored = found[0] ? toInt(found[0].version) : 0;
  if (stored !== row.version) throw new StaleStateError(row.groupId, row.version, stored);
  if (found[0] && found[0].kind !== row.kind)
    throw new StorageError(`conversation ${row.groupId} is stored as kind ${String(found[0].kind)}`);
  throw new StorageError(`cannot insert ${row.kind} conversation ${row.groupId}: a unique column is taken`);
}
