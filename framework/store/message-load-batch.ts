/**
 * Message loads across conversations, coalesced (issue 12): the reads of inbound messages that
 * arrive while an earlier read is in flight go to the database together, as ONE statement, instead
 * of one round trip each. Like the commit batcher (commit-batch.ts) it waits for nothing but the
 * statement before it: with nothing in flight a load goes at once, as MESSAGE_LOAD_SELECT on its
 * own (no timer, no added latency when idle); under load the loads that queued meanwhile, at most
 * maxBatch of them, go next.
 *
 * Each load keeps its own checks: the batch is a VALUES list of (index, group id, digest, envelope
 * digest, now), joined to the conversation and its peer, with the processed and envelope EXISTS
 * evaluated per entry, so every caller gets the row MESSAGE_LOAD_SELECT would have returned for
 * it (none when its conversation is missing). A read needs no transaction: each statement sees one
 * snapshot, and a load that waited behind another only reads later, as a slower one would. When
 * the batch statement fails, each of its loads runs again on its own, so an error reaches only the
 * callers whose own statement fails.
 */
import type { ConversationMessageLoad } from '../relay/store.js';
import { rowToConversation } from './conversation-rows.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import { PEER_COLUMNS, rowToPeer, toBool, type Row } from './mapping.js';
import type { SqlRunner } from './sql-runner.js';
import { MESSAGE_LOAD_SELECT, PEER_COLUMNS_AS_P } from './statements.js';

/** Loads per statement at most: 5 parameters each, well below SQLite's bound-parameter limit. */
export const MAX_LOADS = 64;

/** One message load: MESSAGE_LOAD_SELECT's parameters. */
export interface MessageLoadQuery {
  groupId: string;
  digest: string;
  /** The envelope replay check's digest; null checks nothing (matches no envelope). */
  envelopeDigest: string | null;
  now: number;
}

interface Waiting {
  query: MessageLoadQuery;
  resolve(row: Row | undefined): void;
  reject(e: unknown): void;
}

/** Typed on both backends (Postgres would take untyped VALUES parameters as text). */
const ENTRY = '(CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT))';

/** `count` loads as one statement; each result row carries its entry's index as "load_i". */
export const messageLoadBatchSql = (
  count: number,
): string => `WITH "q" ("i", "group_id", "digest", "env_digest", "now") AS (
  VALUES ${Array.from({ length: count }, () => ENTRY).join(', ')})
  SELECT q."i" AS "load_i", c.*, ${PEER_COLUMNS_AS_P},
  EXISTS (SELECT 1 FROM "processed" pr WHERE pr."group_id" = q."group_id" AND pr."digest" = q."digest") AS "processed_hit",
  EXISTS (SELECT 1 FROM "envelopes" e WHERE e."digest" = q."env_digest" AND e."expires_at" >= q."now") AS "envelope_hit"
  FROM "q" JOIN "conversations" c ON c."group_id" = q."group_id" LEFT JOIN "peers" p ON p."user_id" = c."peer_id"`;

const loadParams = (q: MessageLoadQuery): unknown[] => [
  q.groupId,
  q.digest,
  q.envelopeDigest,
  q.now,
  q.groupId,
];

/** One per store: the queue of loads and the one statement in flight. */
export class MessageLoadBatcher {
  private waiting: Waiting[] = [];
  private loading = false;

  constructor(
    private readonly runner: SqlRunner,
    private readonly maxBatch = MAX_LOADS,
  ) {}

  /** The row MESSAGE_LOAD_SELECT returns for `query`, or undefined when there is none. */
  load(query: MessageLoadQuery): Promise<Row | undefined> {
    return new Promise<Row | undefined>((resolve, reject) => {
      this.waiting.push({ query, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.loading || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.loading = true;
    void this.read(batch).finally(() => {
      this.loading = false;
      this.next();
    });
  }

  private async read(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return this.readAlone(batch[0]!);
    let rows: Row[];
    try {
      rows = await this.runner.once((s) =>
        s.rows(
          messageLoadBatchSql(batch.length),
          batch.flatMap((w, i) => [i, w.query.groupId, w.query.digest, w.query.envelopeDigest, w.query.now]),
        ),
      );
    } catch {
      // Each load again on its own: only the callers whose own statement fails see an error.
      await Promise.all(batch.map((w) => this.readAlone(w)));
      return;
    }
    const byIndex = new Map<number, Row>();
    for (const r of rows) byIndex.set(Number(r.load_i), r);
    batch.forEach((w, i) => w.resolve(byIndex.get(i)));
  }

  private readAlone(w: Waiting): Promise<void> {
    return this.runner
      .once((s) => s.rows(MESSAGE_LOAD_SELECT, loadParams(w.query)))
      .then((rows) => w.resolve(rows[0]), w.reject);
  }
}

/** A load's row as the store returns it; `envelope` says whether the replay check was asked for. */
export function rowToMessageLoad(row: Row, cipher: AtRestCipher, envelope: boolean): ConversationMessageLoad {
  const found = {
    conversation: rowToConversation(row, cipher),
    processed: toBool(row.processed_hit),
    ...(envelope ? { envelopeSeen: toBool(row.envelope_hit) } : {}),
  };
  if (row.p_user_id === null || row.p_user_id === undefined) return found;
  return { ...found, peer: rowToPeer(Object.fromEntries(PEER_COLUMNS.map((c) => [c, row[`p_${c}`]]))) };
}
