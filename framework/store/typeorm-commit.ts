/**
 * RelayStore.commit on TypeORM: every change of one verified input in one transaction, guarded by
 * one compare-and-set on the version of every conversation row it writes, 1:1 session or group
 * alike (one `conversations` table). A version mismatch applies nothing and throws StaleStateError.
 */
import { StaleStateError, StorageError } from '../relay/errors.js';
import { CONVERSATION_DATA_DELETED } from '../relay/store.js';
import type { ConversationRecord, InboundCommit } from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import {
  COLUMNS_KEEPING_EPOCH_STATE,
  CONVERSATION_COLUMNS,
  groupParams,
  sessionParams,
  type ConversationKind,
} from './conversation-rows.js';
import { conversationParams, OUTBOX_COLUMNS, outboxParams, peerParams, toInt } from './mapping.js';
import type { SqlRunner } from './sql-runner.js';
import { placeholders, type Sql } from './sql.js';
import {
  columnList,
  CONVERSATION_DATA_UPSERT,
  ENVELOPE_UPSERT,
  OUTBOX_INSERT,
  PEER_UPSERT,
  PROCESSED_UPSERT,
  WELCOME_UPSERT,
} from './statements.js';

const updateSql = (columns: readonly string[]): string =>
  `UPDATE "conversations" SET ${columns.map((c) => `"${c}" = ?`).join(', ')}, "version" = "version" + 1 WHERE "group_id" = ? AND "version" = ? AND "kind" = ?`;

/**
 * The one compare-and-set write of commit(), for both kinds: "version" must be the one the record
 * was read at, and "kind" must not change under a group id.
 */
const VERSIONED_SQL = {
  update: updateSql(CONVERSATION_COLUMNS),
  /** A group whose epoch part did not change: its epoch_state stays as stored (issue #12). */
  updateKeepingEpochState: updateSql(COLUMNS_KEEPING_EPOCH_STATE),
  // A concurrent insert of the same conversation must read as a lost race, not as a unique
  // violation. No conflict target: with one on group_id alone, Postgres checks topic_id's unique
  // index outside the conflict handling, and the loser of such a race fails there with a raw violation.
  insert: `INSERT INTO "conversations" ("group_id", ${columnList(CONVERSATION_COLUMNS)}, "version") VALUES (${placeholders(CONVERSATION_COLUMNS.length + 2)}) ON CONFLICT DO NOTHING`,
  version: `SELECT "version", "kind" FROM "conversations" WHERE "group_id" = ?`,
  delete: `DELETE FROM "conversations" WHERE "group_id" = ?`,
};

/** Postgres only, for foldedUpdate: written only when the CTE "updated" returned a row. */
const IF_UPDATED = `WHERE EXISTS (SELECT 1 FROM "updated")`;
const OUTBOX_IF_UPDATED = `INSERT INTO "outbox" (${columnList(OUTBOX_COLUMNS)})
  SELECT ?::text, ?::text, ?::bytea, ?::boolean, ?::integer, ?::bigint, ?::boolean, ?::text ${IF_UPDATED}`;
const PROCESSED_IF_UPDATED = `INSERT INTO "processed" ("group_id", "digest", "at") SELECT ?::text, ?::text, ?::bigint
  ${IF_UPDATED} ON CONFLICT ("group_id", "digest") DO UPDATE SET "at" = excluded."at"`;
const ENVELOPE_IF_UPDATED = `INSERT INTO "envelopes" ("digest", "expires_at") SELECT ?::text, ?::bigint
  ${IF_UPDATED} ON CONFLICT ("digest") DO UPDATE SET "expires_at" = excluded."expires_at"`;

/** A conversation record of a commit, reduced to what the compare-and-set write needs. */
interface VersionedRow {
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
const versionedRow = (r: ConversationRecord, cipher: AtRestCipher): VersionedRow => ({
  kind: r.kind,
  groupId: r.groupId,
  version: r.version,
  values: r.kind === 'direct' ? sessionParams(r, cipher) : groupParams(r, cipher),
  keepsEpochState: r.kind === 'group' && r.epochStateUnchanged === true,
});

const updateOf = (row: VersionedRow): string =>
  row.keepsEpochState ? VERSIONED_SQL.updateKeepingEpochState : VERSIONED_SQL.update;

/** Everything the commit writes fits in foldedUpdate's one statement. */
function foldsCompletely(c: InboundCommit): boolean {
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
function soleStoredRow(c: InboundCommit, rows: VersionedRow[]): VersionedRow | undefined {
  if (rows.length !== 1 || (c.deleteConversations?.length ?? 0) > 0) return undefined;
  return rows[0]!.version > 0 ? rows[0] : undefined;
}

/** By group id, whatever the kind: the one order every commit takes row locks in. */
const lockOrder = (a: VersionedRow, b: VersionedRow): number =>
  a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0;

/**
 * Applies `changes` atomically (RelayStore.commit). The caller has unlocked `cipher` already.
 * Postgres' common case, one stored conversation and at most one outbox row, is one statement.
 */
export async function commitChanges(
  runner: SqlRunner,
  cipher: AtRestCipher,
  changes: InboundCommit,
): Promise<void> {
  const rows = (changes.conversations ?? []).map((r) => versionedRow(r, cipher));
  const sole = runner.backend === 'postgres' ? soleStoredRow(changes, rows) : undefined;
  if (sole && foldsCompletely(changes)) {
    // One statement is one transaction: no BEGIN and COMMIT round trips (see foldedUpdate).
    await runner.once((s) => foldedUpdate(s, sole, changes));
    return;
  }
  await runner.transaction(async (s) => {
    let outbox = changes.outbox ?? [];
    if (sole) {
      // The common case (a message in an established session or group): see foldedUpdate.
      await foldedUpdate(s, sole, changes);
      if (outbox.length === 1) outbox = [];
    } else {
      const existing = await lockVersions(s, rows);
      const deleted = await deleteConversations(s, changes);
      for (const row of rows) await writeVersioned(s, row, existing.has(row) && !deleted.has(row.groupId));
    }
    for (const o of outbox) await s.run(OUTBOX_INSERT, outboxParams(o));
    for (const d of changes.conversationData ?? []) {
      if (d.json === CONVERSATION_DATA_DELETED)
        await s.run(`DELETE FROM "conversation_data" WHERE "conversation_id" = ?`, [d.conversationId]);
      else await s.run(CONVERSATION_DATA_UPSERT, conversationParams(d.conversationId, d.json, cipher));
    }
    for (const p of changes.peers ?? []) await s.run(PEER_UPSERT, peerParams(p));
    await writeReplayRecords(s, changes, sole !== undefined);
  });
}

/** Deletes a commit's deleteConversations, whatever their kind; returns their ids. */
async function deleteConversations(s: Sql, c: InboundCommit): Promise<Set<string>> {
  const ids = c.deleteConversations ?? [];
  for (const g of ids) await s.run(VERSIONED_SQL.delete, [g]);
  return new Set(ids);
}

/**
 * Postgres, one stored conversation and nothing deleted: the compare-and-set UPDATE of that row, a
 * single outbox row and the processed and replay-cache upserts go in one statement (data-modifying
 * CTEs). The inserts happen only when the UPDATE matched (WHERE EXISTS on its RETURNING), and one
 * statement is atomic, so on its own it is the whole transaction (commitChanges then skips BEGIN
 * and COMMIT); inside a transaction with further writes it is its first write. The UPDATE takes
 * the row lock lockVersions would (a concurrent writer waits, then fails its version check); a
 * version mismatch writes nothing and throws StaleStateError.
 */
async function foldedUpdate(s: Sql, row: VersionedRow, c: InboundCommit): Promise<void> {
  const parts: Array<{ sql: string; params: unknown[] }> = [];
  if (c.outbox?.length === 1) parts.push({ sql: OUTBOX_IF_UPDATED, params: outboxParams(c.outbox[0]!) });
  if (c.processed) {
    const { groupId, digest, at } = c.processed;
    parts.push({ sql: PROCESSED_IF_UPDATED, params: [groupId, digest, at] });
  }
  if (c.envelope) parts.push({ sql: ENVELOPE_IF_UPDATED, params: [c.envelope.digest, c.envelope.expiresAt] });
  const sql = `WITH "updated" AS (${updateOf(row)} RETURNING 1)${parts
    .map((p, i) => `, "w${i}" AS (${p.sql})`)
    .join('')} SELECT count(*) AS "n" FROM "updated"`;
  const params = [...row.values, row.groupId, row.version, row.kind, ...parts.flatMap((p) => p.params)];
  const result = await s.rows(sql, params);
  if (toInt(result[0]?.n) !== 1) await throwConflict(s, row);
}

/**
 * Locks the stored rows of the given conversations (Postgres; SQLite is serialised already) and
 * checks their versions. Returns those that have a row. Locks are taken in one global order (by
 * group id) so two commits touching the same rows cannot deadlock.
 */
async function lockVersions(s: Sql, rows: VersionedRow[]): Promise<Set<VersionedRow>> {
  const lock = s.backend === 'postgres' ? ' FOR UPDATE' : '';
  const existing = new Set<VersionedRow>();
  for (const row of [...rows].sort(lockOrder)) {
    const found = await s.rows(`${VERSIONED_SQL.version}${lock}`, [row.groupId]);
    const stored = found[0] ? toInt(found[0].version) : 0;
    if (stored !== row.version) throw new StaleStateError(row.groupId, row.version, stored);
    if (found[0]) existing.add(row);
  }
  return existing;
}

async function writeVersioned(s: Sql, row: VersionedRow, exists: boolean): Promise<void> {
  if (!exists && row.keepsEpochState)
    throw new StorageError(`group ${row.groupId}: epochStateUnchanged, but no epoch state is stored`);
  const changed = exists
    ? await s.run(updateOf(row), [...row.values, row.groupId, row.version, row.kind])
    : await s.run(VERSIONED_SQL.insert, [row.groupId, ...row.values, row.version + 1]);
  if (changed === 1) return;
  await throwConflict(s, row);
}

/**
 * Why a compare-and-set write changed no row: a newer version, the group id stored as the other
 * kind, or (an insert) a taken topic id.
 */
async function throwConflict(s: Sql, row: VersionedRow): Promise<never> {
  const found = await s.rows(VERSIONED_SQL.version, [row.groupId]);
  const stored = found[0] ? toInt(found[0].version) : 0;
  if (stored !== row.version) throw new StaleStateError(row.groupId, row.version, stored);
  if (found[0] && found[0].kind !== row.kind)
    throw new StorageError(`conversation ${row.groupId} is stored as kind ${String(found[0].kind)}`);
  throw new StorageError(`cannot insert ${row.kind} conversation ${row.groupId}: a unique column is taken`);
}

/** `folded`: processed and envelope were written by foldedUpdate already. */
async function writeReplayRecords(s: Sql, c: InboundCommit, folded: boolean): Promise<void> {
  if (c.processed && !folded)
    await s.run(PROCESSED_UPSERT, [c.processed.groupId, c.processed.digest, c.processed.at]);
  if (c.envelope && !folded) await s.run(ENVELOPE_UPSERT, [c.envelope.digest, c.envelope.expiresAt]);
  if (c.welcome) await s.run(WELCOME_UPSERT, [c.welcome.digest, c.welcome.at]);
  if (c.consumedKeyPackage)
    await s.run(`UPDATE "key_packages" SET "consumed_at" = ? WHERE "ref" = ? AND "consumed_at" IS NULL`, [
      c.consumedKeyPackage.at,
      c.consumedKeyPackage.ref,
    ]);
}
