/**
 * Message loads across conversations in one statement (issue 12), through the Coalescer
 * (coalescer.ts): loads asked for while one is in flight go together. Each keeps its own checks:
 * the batch is a VALUES list of (index, group id, digest, envelope digest, now), joined to the
 * conversation and its peer, with the processed and envelope EXISTS evaluated per entry, so every
 * caller gets the row MESSAGE_LOAD_SELECT would have returned for it (none when its conversation
 * is missing), its state columns NULL exactly when the row is at the version the caller holds.
 */
import type { ConversationMessageLoad } from '../relay/store.js';
import { Coalescer } from './coalescer.js';
import { rowToConversation } from './conversation-rows.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import { PEER_COLUMNS, rowToPeer, toBool, toInt, type Row } from './mapping.js';
import type { SqlRunner } from './sql-runner.js';
import { conversationColumnsHolding, MESSAGE_LOAD_SELECT, PEER_COLUMNS_AS_P } from './statements.js';

/** Loads per statement at most: 6 parameters each, well below SQLite's bound-parameter limit. */
export const MAX_LOADS = 64;

/** One message load: MESSAGE_LOAD_SELECT's parameters. */
export interface MessageLoadQuery {
  groupId: string;
  digest: string;
  /** The envelope replay check's digest; null checks nothing (matches no envelope). */
  envelopeDigest: string | null;
  now: number;
  /** The row version whose state the caller holds (its state columns are then not read); null: none. */
  held: number | null;
}

/** Typed on both backends (Postgres would take untyped VALUES parameters as text). */
const ENTRY =
  '(CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS INTEGER))';

/** `count` loads as one statement; each result row carries its entry's index as "load_i". */
export const messageLoadBatchSql = (
  count: number,
): string => `WITH "q" ("i", "group_id", "digest", "env_digest", "now", "held") AS (
  VALUES ${Array.from({ length: count }, () => ENTRY).join(', ')})
  SELECT q."i" AS "load_i", ${conversationColumnsHolding('q."held"')}, ${PEER_COLUMNS_AS_P},
  EXISTS (SELECT 1 FROM "processed" pr WHERE pr."group_id" = q."group_id" AND pr."digest" = q."digest") AS "processed_hit",
  EXISTS (SELECT 1 FROM "envelopes" e WHERE e."digest" = q."env_digest" AND e."expires_at" >= q."now") AS "envelope_hit"
  FROM "q" JOIN "conversations" c ON c."group_id" = q."group_id" LEFT JOIN "peers" p ON p."user_id" = c."peer_id"`;

/** The row MESSAGE_LOAD_SELECT returns for a query, or undefined when there is none; coalesced. */
export class MessageLoadBatcher extends Coalescer<MessageLoadQuery, Row | undefined> {
  constructor(runner: SqlRunner, maxBatch = MAX_LOADS) {
    super(
      {
        alone: async (q) =>
          (
            await runner.once((s) =>
              s.rows(MESSAGE_LOAD_SELECT, [
                q.held,
                q.held,
                q.groupId,
                q.digest,
                q.envelopeDigest,
                q.now,
                q.groupId,
              ]),
            )
          )[0],
        together: async (qs) => {
          const params = qs.flatMap((q, i) => [i, q.groupId, q.digest, q.envelopeDigest, q.now, q.held]);
          const rows = await runner.once((s) => s.rows(messageLoadBatchSql(qs.length), params));
          const byIndex = new Map(rows.map((r) => [Number(r.load_i), r]));
          return qs.map((_, i) => byIndex.get(i));
        },
      },
      maxBatch,
    );
  }

  /** The row MESSAGE_LOAD_SELECT returns for `query`, or undefined when there is none. */
  load(query: MessageLoadQuery): Promise<Row | undefined> {
    return this.get(query);
  }
}

/**
 * A load's row as the store returns it; `envelope` says whether the replay check was asked for,
 * `held` is the query's. At the held version the state columns were not read, so none is opened.
 */
export function rowToMessageLoad(
  row: Row,
  cipher: AtRestCipher,
  envelope: boolean,
  held: number | null,
): ConversationMessageLoad {
  const skipped = held !== null && toInt(row.version) === held;
  const found = {
    conversation: rowToConversation(row, cipher, skipped),
    processed: toBool(row.processed_hit),
    ...(skipped ? { stateSkipped: true as const } : {}),
    ...(envelope ? { envelopeSeen: toBool(row.envelope_hit) } : {}),
  };
  if (row.p_user_id === null || row.p_user_id === undefined) return found;
  return { ...found, peer: rowToPeer(Object.fromEntries(PEER_COLUMNS.map((c) => [c, row[`p_${c}`]]))) };
}
