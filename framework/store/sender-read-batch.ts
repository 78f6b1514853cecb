/**
 * Sender-index reads (PROTOCOL.md §8, content-senders.ts) across conversations in one statement
 * (issue 12), through the Coalescer (coalescer.ts): the reads asked for while one is in flight go
 * together, as a VALUES list of (read, group id, message id) joined to "message_senders" on its
 * unique key, so each read gets exactly the entries a read on its own would return.
 */
import { Coalescer } from './coalescer.js';
import type { SqlRunner } from './sql-runner.js';
import { placeholders } from './sql.js';

/** Reads per statement at most. */
export const MAX_SENDER_READS = 64;
/** A read naming more ids than this runs on its own (checks name at most two: own id and target). */
const SHARED_IDS_AT_MOST = 8;

export interface SenderQuery {
  groupId: string;
  messageIds: readonly string[];
}

const ENTRY = '(CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT))';

/** `entries` (read index, group id, message id) as one statement. */
export const senderReadBatchSql = (entries: number): string => `WITH "q" ("i", "group_id", "message_id") AS (
  VALUES ${Array.from({ length: entries }, () => ENTRY).join(', ')})
  SELECT q."i" AS "read_i", s."message_id", s."sender" FROM "q"
  JOIN "message_senders" s ON s."group_id" = q."group_id" AND s."message_id" = q."message_id"`;

/** message id → sender, for the ids of a read the index holds; coalesced. */
export class SenderReadBatcher extends Coalescer<SenderQuery, Map<string, string>> {
  constructor(runner: SqlRunner, maxBatch = MAX_SENDER_READS) {
    super(
      {
        shareable: (q) => q.messageIds.length <= SHARED_IDS_AT_MOST,
        alone: async ({ groupId, messageIds }) => {
          const sql = `SELECT "message_id", "sender" FROM "message_senders" WHERE "group_id" = ? AND "message_id" IN (${placeholders(messageIds.length)})`;
          const rows = await runner.once((s) => s.rows(sql, [groupId, ...messageIds]));
          return new Map(rows.map((r) => [String(r.message_id), String(r.sender)]));
        },
        together: async (qs) => {
          const params = qs.flatMap((q, i) => q.messageIds.flatMap((id) => [i, q.groupId, id]));
          const rows = await runner.once((s) => s.rows(senderReadBatchSql(params.length / 3), params));
          const out = qs.map(() => new Map<string, string>());
          for (const r of rows) out[Number(r.read_i)]!.set(String(r.message_id), String(r.sender));
          return out;
        },
      },
      maxBatch,
    );
  }
}
