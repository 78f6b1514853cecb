/**
 * Postgres: a commit of one stored conversation (and at most one outbox row, no peers, no
 * conversation data) written as ONE statement, the compare-and-set UPDATE and everything else as
 * data-modifying CTEs gated on it; and several such commits of different conversations in one
 * statement (one transaction, one WAL flush), each gated on its own UPDATE so that each applies
 * whole or not at all, whatever the others do.
 */
import type { InboundCommit } from '../relay/store.js';
import { MESSAGE_SENDERS_PER_CONVERSATION } from '../relay/store.js';
import { OUTBOX_COLUMNS, outboxParams, toInt } from './mapping.js';
import type { Sql } from './sql.js';
import { columnList } from './statements.js';
import { senderParams, sendersByGroup, throwConflict, updateOf, type VersionedRow } from './versioned-row.js';

/** Written only when the CTE `cte` (the compare-and-set UPDATE) returned a row. */
const ifUpdated = (cte: string): string => `WHERE EXISTS (SELECT 1 FROM "${cte}")`;

const outboxIf = (cte: string): string => `INSERT INTO "outbox" (${columnList(OUTBOX_COLUMNS)})
  SELECT ?::text, ?::text, ?::bytea, ?::boolean, ?::integer, ?::bigint, ?::boolean, ?::text, ?::text ${ifUpdated(cte)}`;
const processedIf = (cte: string): string => `INSERT INTO "processed" ("group_id", "digest", "at")
  SELECT ?::text, ?::text, ?::bigint ${ifUpdated(cte)} ON CONFLICT ("group_id", "digest") DO UPDATE SET "at" = excluded."at"`;
const envelopeIf = (cte: string): string => `INSERT INTO "envelopes" ("digest", "expires_at")
  SELECT ?::text, ?::bigint ${ifUpdated(cte)} ON CONFLICT ("digest") DO UPDATE SET "expires_at" = excluded."expires_at"`;
const senderIf = (
  cte: string,
): string => `INSERT INTO "message_senders" ("group_id", "message_id", "sender", "at")
  SELECT ?::text, ?::text, ?::text, ?::bigint ${ifUpdated(cte)} ON CONFLICT ("group_id", "message_id") DO NOTHING`;
const senderTrimIf = (
  cte: string,
): string => `DELETE FROM "message_senders" WHERE EXISTS (SELECT 1 FROM "${cte}") AND "group_id" = ?::text
  AND "seq" <= (SELECT "seq" FROM "message_senders" WHERE "group_id" = ?::text ORDER BY "seq" DESC LIMIT 1 OFFSET ?::integer)`;

interface Part {
  sql: string;
  params: unknown[];
}

/** One commit's CTEs, named `${cte}` (the UPDATE) and `${cte}_w<i>` (the gated writes). */
function foldedParts(row: VersionedRow, c: InboundCommit, cte: string): Part[] {
  const parts: Part[] = [
    {
      sql: `"${cte}" AS (${updateOf(row)} RETURNING 1)`,
      params: [...row.values, row.groupId, row.version, row.kind],
    },
  ];
  const gated = (sql: string, params: unknown[]) =>
    parts.push({ sql: `"${cte}_w${parts.length}" AS (${sql})`, params });
  if (c.outbox?.length === 1) gated(outboxIf(cte), outboxParams(c.outbox[0]!));
  if (c.processed) {
    const { groupId, digest, at } = c.processed;
    gated(processedIf(cte), [groupId, digest, at]);
  }
  if (c.envelope) gated(envelopeIf(cte), [c.envelope.digest, c.envelope.expiresAt]);
  for (const [groupId, records] of sendersByGroup(c)) {
    for (const r of records) gated(senderIf(cte), senderParams(r));
    // The statement's snapshot does not see the rows it inserts: keep room for them among the old.
    const offset = Math.max(0, MESSAGE_SENDERS_PER_CONVERSATION - records.length);
    gated(senderTrimIf(cte), [groupId, groupId, offset]);
  }
  return parts;
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
export async function foldedUpdate(s: Sql, row: VersionedRow, c: InboundCommit): Promise<void> {
  const parts = foldedParts(row, c, 'updated');
  const sql = `WITH ${parts.map((p) => p.sql).join(', ')} SELECT count(*) AS "n" FROM "updated"`;
  const result = await s.rows(
    sql,
    parts.flatMap((p) => p.params),
  );
  if (toInt(result[0]?.n) !== 1) await throwConflict(s, row);
}

/** One commit of a batch: its row and changes (foldable, see commit-batch.ts). */
export interface FoldedCommit {
  row: VersionedRow;
  changes: InboundCommit;
}

/**
 * Several foldable commits of DIFFERENT conversations as one statement: one round trip, one
 * transaction, one WAL flush. Each commit's writes are gated on its own UPDATE, so a commit whose
 * version moved on writes nothing while the others apply. Returns, per commit in order, whether
 * its UPDATE matched. The caller keeps the keys of one statement distinct (group ids, envelope
 * digests): Postgres refuses to upsert one row twice in a statement, which fails all of them.
 */
export async function foldedBatch(s: Sql, commits: readonly FoldedCommit[]): Promise<boolean[]> {
  const parts = commits.map((c, i) => foldedParts(c.row, c.changes, `u${i}`));
  const counts = commits.map((_, i) => `(SELECT count(*) FROM "u${i}") AS "n${i}"`).join(', ');
  const sql = `WITH ${parts.flatMap((ps) => ps.map((p) => p.sql)).join(', ')} SELECT ${counts}`;
  const result = await s.rows(
    sql,
    parts.flatMap((ps) => ps.flatMap((p) => p.params)),
  );
  return commits.map((_, i) => toInt(result[0]?.[`n${i}`]) === 1);
}
