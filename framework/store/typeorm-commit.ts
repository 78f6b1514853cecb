/**
 * RelayStore.commit on TypeORM: every change of one verified input in one transaction, guarded by
 * one compare-and-set on the version of every conversation row it writes, 1:1 session or group
 * alike (one `conversations` table). A version mismatch applies nothing and throws StaleStateError.
 */
import { StaleStateError, StorageError } from '../relay/errors.js';
import { CONVERSATION_DATA_DELETED, MESSAGE_SENDERS_PER_CONVERSATION } from '../relay/store.js';
import type { InboundCommit, OutboxRecord } from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import { CONVERSATION_COLUMNS } from './conversation-rows.js';
import { foldedUpdate } from './folded-commit.js';
import {
  conversationParams,
  OUTBOX_COLUMNS,
  outboxParams,
  PEER_COLUMNS,
  peerParams,
  toInt,
} from './mapping.js';
import type { SqlRunner } from './sql-runner.js';
import { placeholders, type Sql } from './sql.js';
import {
  conversationDataUpsertRows,
  outboxInsertRows,
  peerUpsertRows,
  valueRows,
  CONVERSATION_DATA_UPSERT,
  ENVELOPE_UPSERT,
  MESSAGE_SENDER_INSERT,
  MESSAGE_SENDER_TRIM,
  OUTBOX_INSERT,
  PEER_UPSERT,
  PROCESSED_UPSERT,
  WELCOME_UPSERT,
} from './statements.js';
import {
  foldsCompletely,
  senderParams,
  sendersByGroup,
  soleStoredRow,
  throwConflict,
  updateOf,
  versionedRow,
  VERSIONED_SQL,
  type VersionedRow,
} from './versioned-row.js';

const CONSUME_KEY_PACKAGE = `UPDATE "key_packages" SET "consumed_at" = ? WHERE "ref" = ? AND "consumed_at" IS NULL`;

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
    } else if (s.backend === 'postgres') {
      await writeConversationsAtOnce(s, rows, changes);
    } else {
      const existing = await lockVersions(s, rows);
      const deleted = await deleteConversations(s, changes);
      for (const row of rows) await writeVersioned(s, row, existing.has(row) && !deleted.has(row.groupId));
    }
    if (s.backend === 'postgres') {
      await writeRestAtOnce(s, changes, outbox, cipher, sole !== undefined);
      if (!sole) await writeSenders(s, changes);
      return;
    }
    for (const o of outbox) await s.run(OUTBOX_INSERT, outboxParams(o));
    for (const d of changes.conversationData ?? []) {
      if (d.json === CONVERSATION_DATA_DELETED)
        await s.run(`DELETE FROM "conversation_data" WHERE "conversation_id" = ?`, [d.conversationId]);
      else await s.run(CONVERSATION_DATA_UPSERT, conversationParams(d.conversationId, d.json, cipher));
    }
    for (const p of changes.peers ?? []) await s.run(PEER_UPSERT, peerParams(p));
    await writeReplayRecords(s, changes, sole !== undefined);
    if (!sole) await writeSenders(s, changes);
  });
}

/** The sender index outside foldedUpdate: the entries, then each conversation's bound. */
async function writeSenders(s: Sql, c: InboundCommit): Promise<void> {
  for (const [groupId, records] of sendersByGroup(c)) {
    for (const r of records) await s.run(MESSAGE_SENDER_INSERT, senderParams(r));
    await s.run(MESSAGE_SENDER_TRIM, [groupId, groupId, MESSAGE_SENDERS_PER_CONVERSATION]);
  }
}

// ---- Postgres: many rows per statement -----------------------------------------------------------

/**
 * Parameters per statement at most: Postgres takes 65,535; staying well below keeps a statement's
 * text and parse time modest. Many rows go in chunks of this many parameters.
 */
const MAX_PARAMS = 10_000;

/** `items` in consecutive chunks of at most MAX_PARAMS / width items, order kept. */
function chunked<T>(items: readonly T[], width: number): T[][] {
  const size = Math.max(1, Math.floor(MAX_PARAMS / width));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The last entry per key, in first-seen order: one statement may not write a row twice. */
function lastPerKey<T>(items: readonly T[], key: (t: T) => string): T[] {
  const byKey = new Map<string, T>();
  for (const t of items) byKey.set(key(t), t);
  return [...byKey.values()];
}

/**
 * The conversations of a commit that is not the one-stored-row case, on Postgres: the row locks
 * and version checks in one SELECT … FOR UPDATE per chunk (rows locked in group id order, as
 * lockVersions does one by one: LockRows runs above the sort), the deletes in one statement, each
 * stored row's compare-and-set UPDATE, and the new rows in one multi-row INSERT whose RETURNING
 * tells which ones went in.
 */
async function writeConversationsAtOnce(s: Sql, rows: VersionedRow[], c: InboundCommit): Promise<void> {
  const sorted = [...rows].sort(lockOrder);
  const stored = new Map<string, { version: number; kind: unknown }>();
  for (const chunk of chunked(sorted, 1)) {
    const found = await s.rows(
      `${VERSIONED_SQL.versions} (${placeholders(chunk.length)}) ORDER BY "group_id" COLLATE "C" FOR UPDATE`,
      chunk.map((r) => r.groupId),
    );
    for (const f of found) stored.set(String(f.group_id), { version: toInt(f.version), kind: f.kind });
  }
  for (const row of sorted) {
    const version = stored.get(row.groupId)?.version ?? 0;
    if (version !== row.version) throw new StaleStateError(row.groupId, row.version, version);
  }
  const deleted = new Set<string>(c.deleteConversations ?? []);
  // A conversation's sender index goes with it, in the same statement (a data-modifying CTE).
  for (const chunk of chunked([...deleted], 2)) {
    const ids = placeholders(chunk.length);
    await s.rows(
      `WITH "gone" AS (DELETE FROM "conversations" WHERE "group_id" IN (${ids})) DELETE FROM "message_senders" WHERE "group_id" IN (${ids})`,
      [...chunk, ...chunk],
    );
  }
  const inserts: VersionedRow[] = [];
  for (const row of rows) {
    if (stored.has(row.groupId) && !deleted.has(row.groupId)) await writeVersioned(s, row, true);
    else if (row.keepsEpochState)
      throw new StorageError(`group ${row.groupId}: epochStateUnchanged, but no epoch state is stored`);
    else inserts.push(row);
  }
  const width = CONVERSATION_COLUMNS.length + 2;
  for (const chunk of chunked(inserts, width)) {
    const returned = await s.rows(
      `${VERSIONED_SQL.insertRows} ${valueRows(chunk.length, width)} ON CONFLICT DO NOTHING RETURNING "group_id"`,
      chunk.flatMap((r) => [r.groupId, ...r.values, r.version + 1]),
    );
    const inserted = new Set(returned.map((r) => String(r.group_id)));
    const lost = chunk.find((r) => !inserted.has(r.groupId));
    if (lost) await throwConflict(s, lost);
  }
}

/**
 * Everything else a commit writes (outbox rows, conversation data, peers, the replay records) as
 * one statement on Postgres: each write a data-modifying CTE, the outbox rows one multi-row INSERT
 * so that they take their seq in commit order. The writes touch different rows (keys deduplicated
 * here), which is what CTEs sharing one snapshot need. A commit too large for one statement runs
 * the same writes one after another.
 */
async function writeRestAtOnce(
  s: Sql,
  c: InboundCommit,
  outbox: OutboxRecord[],
  cipher: AtRestCipher,
  folded: boolean,
): Promise<void> {
  const parts: Array<{ sql: string; params: unknown[] }> = [];
  for (const chunk of chunked(outbox, OUTBOX_COLUMNS.length))
    parts.push({ sql: outboxInsertRows(chunk.length), params: chunk.flatMap(outboxParams) });
  const data = lastPerKey(c.conversationData ?? [], (d) => d.conversationId);
  const dropped = data.filter((d) => d.json === CONVERSATION_DATA_DELETED).map((d) => d.conversationId);
  const kept = data.filter((d) => d.json !== CONVERSATION_DATA_DELETED);
  for (const chunk of chunked(dropped, 1))
    parts.push({
      sql: `DELETE FROM "conversation_data" WHERE "conversation_id" IN (${placeholders(chunk.length)})`,
      params: chunk,
    });
  for (const chunk of chunked(kept, 3))
    parts.push({
      sql: conversationDataUpsertRows(chunk.length),
      params: chunk.flatMap((d) => conversationParams(d.conversationId, d.json, cipher)),
    });
  const peers = lastPerKey(c.peers ?? [], (p) => p.userId);
  for (const chunk of chunked(peers, PEER_COLUMNS.length))
    parts.push({ sql: peerUpsertRows(chunk.length), params: chunk.flatMap(peerParams) });
  parts.push(...replayRecordParts(c, folded));
  if (parts.length === 0) return;
  const params = parts.flatMap((p) => p.params);
  if (parts.length === 1 || params.length > MAX_PARAMS) {
    for (const p of parts) await s.run(p.sql, p.params);
    return;
  }
  const ctes = parts.map((p, i) => `"w${i}" AS (${p.sql})`).join(', ');
  await s.rows(`WITH ${ctes} SELECT 1 AS "done"`, params);
}

/** The replay records of writeReplayRecords, as statements; `folded` as there. */
function replayRecordParts(c: InboundCommit, folded: boolean): Array<{ sql: string; params: unknown[] }> {
  const parts: Array<{ sql: string; params: unknown[] }> = [];
  if (c.processed && !folded)
    parts.push({ sql: PROCESSED_UPSERT, params: [c.processed.groupId, c.processed.digest, c.processed.at] });
  if (c.envelope && !folded)
    parts.push({ sql: ENVELOPE_UPSERT, params: [c.envelope.digest, c.envelope.expiresAt] });
  if (c.welcome) parts.push({ sql: WELCOME_UPSERT, params: [c.welcome.digest, c.welcome.at] });
  if (c.consumedKeyPackage)
    parts.push({
      sql: CONSUME_KEY_PACKAGE,
      params: [c.consumedKeyPackage.at, c.consumedKeyPackage.ref],
    });
  return parts;
}

// ---- one row per statement (SQLite) ---------------------------------------------------------------

/** Deletes a commit's deleteConversations, whatever their kind; returns their ids. */
async function deleteConversations(s: Sql, c: InboundCommit): Promise<Set<string>> {
  const ids = c.deleteConversations ?? [];
  for (const g of ids) {
    await s.run(VERSIONED_SQL.delete, [g]);
    await s.run(VERSIONED_SQL.deleteSenders, [g]);
  }
  return new Set(ids);
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

/** `folded`: processed and envelope were written by foldedUpdate already. */
async function writeReplayRecords(s: Sql, c: InboundCommit, folded: boolean): Promise<void> {
  if (c.processed && !folded)
    await s.run(PROCESSED_UPSERT, [c.processed.groupId, c.processed.digest, c.processed.at]);
  if (c.envelope && !folded) await s.run(ENVELOPE_UPSERT, [c.envelope.digest, c.envelope.expiresAt]);
  if (c.welcome) await s.run(WELCOME_UPSERT, [c.welcome.digest, c.welcome.at]);
  if (c.consumedKeyPackage)
    await s.run(CONSUME_KEY_PACKAGE, [c.consumedKeyPackage.at, c.consumedKeyPackage.ref]);
}
