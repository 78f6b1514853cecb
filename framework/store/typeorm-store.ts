/**
 * RelayStore on TypeORM (Postgres or SQLite through better-sqlite3), with the semantics of
 * MemoryRelayStore. commit() is one database transaction guarded by optimistic versions on every
 * conversation row it writes, 1:1 session or group alike (one `conversations` table).
 */
import type { DataSource, QueryRunner } from 'typeorm';
import type { UnixSeconds } from '../relay/brand.js';
import { StaleStateError, StorageError } from '../relay/errors.js';
import { CONVERSATION_DATA_DELETED, directMessageLoad, groupMessageLoad } from '../relay/store.js';
import type {
  ConversationMessageLoad,
  ConversationRecord,
  GroupRecord,
  GroupSummaryRecord,
  InboundCommit,
  GroupMessageLoad,
  MessageLoad,
  OutboxRecord,
  OwnBundle,
  ParkedInboundRecord,
  PeerRecord,
  RelayStore,
  SessionAccessRecord,
  SessionRecord,
  StoredIdentity,
  StoredKeyPackage,
} from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import { StoreStateKey } from './state-key-store.js';
import type { ScryptParams, StateKeyInput } from './state-key.js';
import type { RelayBackend } from './entities.js';
import {
  CONVERSATION_COLUMNS,
  GROUP_SUMMARY_COLUMNS,
  groupParams,
  rowToConversation,
  rowToGroup,
  rowToGroupSummary,
  rowToSession,
  rowToSessionAccess,
  SESSION_ACCESS_COLUMNS,
  sessionParams,
  type ConversationKind,
} from './conversation-rows.js';
import {
  conversationParams,
  identityParams,
  keyPackageParams,
  OUTBOX_COLUMNS,
  outboxParams,
  ownBundleParams,
  PARKED_COLUMNS,
  parkedParams,
  PEER_COLUMNS,
  peerParams,
  rowToIdentity,
  rowToKeyPackage,
  rowToOutbox,
  rowToConversationJson,
  rowToOwnBundle,
  rowToParked,
  rowToPeer,
  toBool,
  toInt,
  IDENTITY_ROW_ID,
  OWN_BUNDLE_ROW_ID,
} from './mapping.js';
import { Mutex } from './mutex.js';
import { TypeOrmLeaseStore } from './lease-store.js';
import { backendOf, placeholders, sqlOn, type Sql } from './sql.js';

/**
 * Optional settings of a TypeOrmRelayStore: at-rest encryption of secrets and whether close() also destroys
 * the DataSource.
 */
export interface TypeOrmRelayStoreOptions {
  /**
   * Enables at-rest encryption of secrets. 32 raw bytes, 64 hex characters or base64 of 32 bytes
   * are the key; any other string is a passphrase, stretched with scrypt and a salt kept in the
   * database (state-key.ts).
   */
  stateKey?: StateKeyInput;
  /**
   * scrypt cost for the salt record a passphrase creates (default SCRYPT_DEFAULTS, 128 MiB). Only
   * test suites that open hundreds of throwaway databases should lower it.
   */
  scrypt?: ScryptParams;
  /** Destroy the DataSource on close() (default true). */
  closeDataSource?: boolean;
}

const WEEK_SECONDS = 7 * 86400;
/** Keeps IN lists well below SQLite's bound-parameter limit. */
const IN_CHUNK = 500;

const chunks = <T>(items: T[]): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += IN_CHUNK) out.push(items.slice(i, i + IN_CHUNK));
  return out;
};

/** `"a", "b", "c"`: quoted column names. */
const columnList = (columns: readonly string[]): string => columns.map((c) => `"${c}"`).join(', ');

/** `INSERT … ON CONFLICT (key) DO UPDATE` for every non-key column; valid in Postgres and SQLite. */
function upsertSql(table: string, key: string[], columns: readonly string[]): string {
  const all = [...key, ...columns];
  const set = columns.map((c) => `"${c}" = excluded."${c}"`).join(', ');
  return `INSERT INTO "${table}" (${columnList(all)}) VALUES (${placeholders(all.length)}) ON CONFLICT (${columnList(key)}) DO UPDATE SET ${set}`;
}

const IDENTITY_UPSERT = upsertSql(
  'identities',
  ['id'],
  ['signing_seed', 'seal_secret', 'created_at', 'at_rest'],
);
const KEY_PACKAGE_UPSERT = upsertSql(
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
const OWN_BUNDLE_UPSERT = upsertSql('own_bundle', ['id'], ['bytes', 'issued_at', 'key_package_ref']);
const PEER_UPSERT = upsertSql(
  'peers',
  ['user_id'],
  PEER_COLUMNS.filter((c) => c !== 'user_id'),
);
// Upsert, not insert-or-ignore: MemoryRelayStore overwrites `at`, and `at` decides when prune drops it.
const PROCESSED_UPSERT = upsertSql('processed', ['group_id', 'digest'], ['at']);
const ENVELOPE_UPSERT = upsertSql('envelopes', ['digest'], ['expires_at']);
const WELCOME_UPSERT = upsertSql('welcomes', ['digest'], ['at']);
const CONVERSATION_UPSERT = upsertSql('conversation_data', ['conversation_id'], ['json', 'at_rest']);
const OUTBOX_INSERT = `INSERT INTO "outbox" (${columnList(OUTBOX_COLUMNS)}) VALUES (${placeholders(OUTBOX_COLUMNS.length)})`;
const OUTBOX_SELECT = `SELECT ${columnList(OUTBOX_COLUMNS)} FROM "outbox" WHERE "quarantined_at" IS NULL ORDER BY "seq" LIMIT ?`;
const OUTBOX_QUARANTINE = `UPDATE "outbox" SET "quarantined_at" = ?
  WHERE ("id" = ? OR "depends_on" = ?) AND "quarantined_at" IS NULL`;
/** Each kind's reads; callers append `AND …` conditions and ordering. */
const SESSION_SELECT = `SELECT * FROM "conversations" WHERE "kind" = 'direct'`;
const SESSION_ACCESS_SELECT = `SELECT ${columnList(SESSION_ACCESS_COLUMNS)} FROM "conversations" WHERE "kind" = 'direct' ORDER BY "group_id"`;
const GROUP_SUMMARY_SELECT = `SELECT ${columnList(GROUP_SUMMARY_COLUMNS)} FROM "conversations" WHERE "kind" = 'group' ORDER BY "group_id"`;
const PARKED_INSERT = `INSERT INTO "parked_inbound" (${columnList(PARKED_COLUMNS)}) VALUES (${placeholders(PARKED_COLUMNS.length)})`;
const PARKED_SELECT = `SELECT ${columnList(PARKED_COLUMNS)} FROM "parked_inbound" ORDER BY "seq" LIMIT ?`;
const GROUP_SELECT = `SELECT * FROM "conversations" WHERE "kind" = 'group'`;
/**
 * loadForMessage and loadGroupForMessage: the conversation row of either kind, the peer's row of a
 * 1:1 conversation (columns prefixed `p_`; none for a group) and the processed check.
 */
const MESSAGE_LOAD_SELECT = `SELECT c.*, ${PEER_COLUMNS.map((c) => `p."${c}" AS "p_${c}"`).join(', ')},
  EXISTS (SELECT 1 FROM "processed" WHERE "group_id" = ? AND "digest" = ?) AS "processed_hit"
  FROM "conversations" c LEFT JOIN "peers" p ON p."user_id" = c."peer_id" WHERE c."group_id" = ?`;

/**
 * The one compare-and-set write of commit(), for both kinds: "version" must be the one the record
 * was read at, and "kind" must not change under a group id.
 */
const VERSIONED_SQL = {
  update: `UPDATE "conversations" SET ${CONVERSATION_COLUMNS.map((c) => `"${c}" = ?`).join(', ')}, "version" = "version" + 1 WHERE "group_id" = ? AND "version" = ? AND "kind" = ?`,
  // A concurrent insert of the same conversation must read as a lost race, not as a unique
  // violation. No conflict target: with one on group_id alone, Postgres checks topic_id's unique
  // index outside the conflict handling, and the loser of such a race fails there with a raw violation.
  insert: `INSERT INTO "conversations" ("group_id", ${columnList(CONVERSATION_COLUMNS)}, "version") VALUES (${placeholders(CONVERSATION_COLUMNS.length + 2)}) ON CONFLICT DO NOTHING`,
  version: `SELECT "version", "kind" FROM "conversations" WHERE "group_id" = ?`,
};

/** A session or group record of a commit, reduced to what the compare-and-set write needs. */
interface VersionedRow {
  kind: ConversationKind;
  groupId: string;
  /** The version it was read at (0: must not exist yet). */
  version: number;
  /** CONVERSATION_COLUMNS' values, sealed where secret. */
  values: unknown[];
}

/** Postgres only, for foldedUpdate: written only when the CTE "updated" returned a row. */
const IF_UPDATED = `WHERE EXISTS (SELECT 1 FROM "updated")`;
const OUTBOX_IF_UPDATED = `INSERT INTO "outbox" (${columnList(OUTBOX_COLUMNS)})
  SELECT ?::text, ?::text, ?::bytea, ?::boolean, ?::integer, ?::bigint, ?::boolean, ?::text ${IF_UPDATED}`;
const PROCESSED_IF_UPDATED = `INSERT INTO "processed" ("group_id", "digest", "at") SELECT ?::text, ?::text, ?::bigint
  ${IF_UPDATED} ON CONFLICT ("group_id", "digest") DO UPDATE SET "at" = excluded."at"`;
const ENVELOPE_IF_UPDATED = `INSERT INTO "envelopes" ("digest", "expires_at") SELECT ?::text, ?::bigint
  ${IF_UPDATED} ON CONFLICT ("digest") DO UPDATE SET "expires_at" = excluded."expires_at"`;

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
 * The one session or group of a commit, when it updates a stored row (version > 0: it was read from
 * the store) and the commit deletes none; such a commit needs no separate lock or existence check.
 */
function soleStoredRow(c: InboundCommit, rows: VersionedRow[]): VersionedRow | undefined {
  if (rows.length !== 1 || (c.deleteSessions?.length ?? 0) > 0 || (c.deleteGroups?.length ?? 0) > 0)
    return undefined;
  return rows[0]!.version > 0 ? rows[0] : undefined;
}

/** By group id, whatever the kind: the one order every commit takes row locks in. */
const lockOrder = (a: VersionedRow, b: VersionedRow): number =>
  a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0;

interface Tx {
  begin(): Promise<unknown>;
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
}

const typeOrmTx = (qr: QueryRunner): Tx => ({
  begin: async () => {
    await qr.connect();
    await qr.startTransaction();
  },
  commit: () => qr.commitTransaction(),
  rollback: () => qr.rollbackTransaction(),
});

/**
 * TypeORM begins SQLite transactions DEFERRED; a deferred reader that later writes can fail with
 * SQLITE_BUSY at once, ignoring busy_timeout, when another process (a CLI next to the bot) wrote
 * meanwhile. IMMEDIATE takes the write lock up front and waits politely instead.
 */
const sqliteTx = (qr: QueryRunner): Tx => ({
  begin: () => qr.query('BEGIN IMMEDIATE'),
  commit: () => qr.query('COMMIT'),
  rollback: () => qr.query('ROLLBACK'),
});

/** RelayStore on Postgres or embedded SQLite through TypeORM, with optional encryption at rest. */
export class TypeOrmRelayStore implements RelayStore {
  readonly backend: RelayBackend;
  private readonly stateKey: StoreStateKey;
  /** SQLite only: one shared connection, so every operation takes its turn. */
  private readonly mutex: Mutex | undefined;
  private readonly closeDataSource: boolean;
  /** Leases and the replica registry on the same database, in turn with this store on SQLite. */
  readonly leases: TypeOrmLeaseStore;

  constructor(
    private readonly ds: DataSource,
    options: TypeOrmRelayStoreOptions = {},
  ) {
    this.backend = backendOf(ds);
    this.stateKey = new StoreStateKey(options.stateKey, (fn) => this.txNow(fn), options.scrypt);
    this.mutex = this.backend === 'sqlite' ? new Mutex() : undefined;
    this.closeDataSource = options.closeDataSource ?? true;
    this.leases = new TypeOrmLeaseStore(ds, (fn) => this.serial(fn));
  }

  /** Whether secrets are encrypted before they reach the database; the caller warns when not. */
  get encryptedAtRest(): boolean {
    return this.stateKey.encrypted;
  }

  /**
   * Re-seals every sealed value under a key made from `next` (new salt), in one transaction, after
   * checking the current key. Stop every other process using this database first: one still
   * holding the old key would write rows the new key cannot open. Returns the rows re-sealed.
   */
  rotateStateKey(next: StateKeyInput): Promise<number> {
    return this.stateKey.rotate(next);
  }

  /** Every method awaits ready() (through withSql, transaction or commit) before it uses this. */
  private get cipher(): AtRestCipher {
    return this.stateKey.cipher;
  }

  private ready(): Promise<void> {
    return this.stateKey.ready();
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex ? this.mutex.run(fn) : fn();
  }

  private async withSql<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    await this.ready();
    return this.serial(async () => {
      const qr = this.ds.createQueryRunner();
      try {
        return await fn(sqlOn(qr, this.backend));
      } finally {
        await qr.release();
      }
    });
  }

  private async transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    await this.ready();
    return this.txNow(fn);
  }

  /** A transaction without ready(): what unlocking the key itself runs in. */
  private txNow<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      const qr = this.ds.createQueryRunner();
      const tx = this.backend === 'sqlite' ? sqliteTx(qr) : typeOrmTx(qr);
      await tx.begin();
      try {
        const result = await fn(sqlOn(qr, this.backend));
        await tx.commit();
        return result;
      } catch (err) {
        // The original failure matters more than a rollback on a connection that may be gone.
        await tx.rollback().catch(() => undefined);
        throw err;
      } finally {
        await qr.release();
      }
    });
  }

  // ---- identity and key packages ----------------------------------------------------------------

  async loadIdentity(): Promise<StoredIdentity | undefined> {
    const rows = await this.withSql((s) =>
      s.rows(`SELECT * FROM "identities" WHERE "id" = ?`, [IDENTITY_ROW_ID]),
    );
    return rows[0] && rowToIdentity(rows[0], this.cipher);
  }

  async saveIdentity(identity: StoredIdentity): Promise<void> {
    await this.withSql((s) => s.run(IDENTITY_UPSERT, identityParams(identity, this.cipher)));
  }

  async putKeyPackage(kp: StoredKeyPackage): Promise<void> {
    await this.withSql((s) => s.run(KEY_PACKAGE_UPSERT, keyPackageParams(kp, this.cipher)));
  }

  async listKeyPackages(): Promise<StoredKeyPackage[]> {
    const rows = await this.withSql((s) =>
      s.rows(`SELECT * FROM "key_packages" ORDER BY "created_at", "ref"`),
    );
    return rows.map((r) => rowToKeyPackage(r, this.cipher));
  }

  async markKeyPackagesSuperseded(exceptRef: string, at: UnixSeconds): Promise<void> {
    await this.withSql((s) =>
      s.run(`UPDATE "key_packages" SET "superseded_at" = ? WHERE "ref" <> ? AND "superseded_at" IS NULL`, [
        at,
        exceptRef,
      ]),
    );
  }

  async deleteKeyPackages(refs: string[]): Promise<void> {
    await this.deleteIn('key_packages', 'ref', refs);
  }

  async loadOwnBundle(): Promise<OwnBundle | undefined> {
    const rows = await this.withSql((s) =>
      s.rows(`SELECT * FROM "own_bundle" WHERE "id" = ?`, [OWN_BUNDLE_ROW_ID]),
    );
    return rows[0] && rowToOwnBundle(rows[0]);
  }

  async saveOwnBundle(bundle: OwnBundle): Promise<void> {
    await this.withSql((s) => s.run(OWN_BUNDLE_UPSERT, ownBundleParams(bundle)));
  }

  // ---- peers and sessions -----------------------------------------------------------------------

  async getPeer(userId: string): Promise<PeerRecord | undefined> {
    const rows = await this.withSql((s) => s.rows(`SELECT * FROM "peers" WHERE "user_id" = ?`, [userId]));
    return rows[0] && rowToPeer(rows[0]);
  }

  async putPeer(peer: PeerRecord): Promise<void> {
    await this.withSql((s) => s.run(PEER_UPSERT, peerParams(peer)));
  }

  async getSession(groupId: string): Promise<SessionRecord | undefined> {
    const rows = await this.withSql((s) => s.rows(`${SESSION_SELECT} AND "group_id" = ?`, [groupId]));
    return rows[0] && rowToSession(rows[0], this.cipher);
  }

  /** At most one session per peer exists in practice (a new Welcome replaces the old group); newest wins. */
  async getSessionByPeer(peerId: string): Promise<SessionRecord | undefined> {
    const rows = await this.withSql((s) =>
      s.rows(`${SESSION_SELECT} AND "peer_id" = ? ORDER BY "updated_at" DESC, "group_id" LIMIT 1`, [peerId]),
    );
    return rows[0] && rowToSession(rows[0], this.cipher);
  }

  async listSessions(): Promise<SessionRecord[]> {
    const rows = await this.withSql((s) => s.rows(`${SESSION_SELECT} ORDER BY "group_id"`));
    return rows.map((r) => rowToSession(r, this.cipher));
  }

  async listSessionAccess(): Promise<SessionAccessRecord[]> {
    return (await this.withSql((s) => s.rows(SESSION_ACCESS_SELECT))).map((r) =>
      rowToSessionAccess(r, this.cipher),
    );
  }

  async deleteUnusedSessions(before: UnixSeconds): Promise<string[]> {
    const rows = await this.withSql((s) =>
      s.rows(
        `DELETE FROM "conversations" WHERE "kind" = 'direct' AND "unused_since" IS NOT NULL AND "unused_since" < ? RETURNING "group_id"`,
        [before],
      ),
    );
    return rows.map((r) => String(r.group_id)).sort();
  }

  // ---- groups -----------------------------------------------------------------------------------

  async getGroup(groupId: string): Promise<GroupRecord | undefined> {
    const rows = await this.withSql((s) => s.rows(`${GROUP_SELECT} AND "group_id" = ?`, [groupId]));
    return rows[0] && rowToGroup(rows[0], this.cipher);
  }

  async getGroupByTopic(topicId: string): Promise<GroupRecord | undefined> {
    const rows = await this.withSql((s) => s.rows(`${GROUP_SELECT} AND "topic_id" = ?`, [topicId]));
    return rows[0] && rowToGroup(rows[0], this.cipher);
  }

  async listGroups(): Promise<GroupRecord[]> {
    const rows = await this.withSql((s) => s.rows(`${GROUP_SELECT} ORDER BY "group_id"`));
    return rows.map((r) => rowToGroup(r, this.cipher));
  }

  async listGroupSummaries(): Promise<GroupSummaryRecord[]> {
    return (await this.withSql((s) => s.rows(GROUP_SUMMARY_SELECT))).map((r) =>
      rowToGroupSummary(r, this.cipher),
    );
  }

  // ---- dedupe and replay cache ------------------------------------------------------------------

  async hasProcessed(groupId: string, digest: string): Promise<boolean> {
    const sql = `SELECT 1 AS "hit" FROM "processed" WHERE "group_id" = ? AND "digest" = ?`;
    return (await this.withSql((s) => s.rows(sql, [groupId, digest]))).length > 0;
  }

  async getConversation(groupId: string): Promise<ConversationRecord | undefined> {
    const sql = `SELECT * FROM "conversations" WHERE "group_id" = ?`;
    const rows = await this.withSql((s) => s.rows(sql, [groupId]));
    return rows[0] && rowToConversation(rows[0], this.cipher);
  }

  /** One statement: the row of either kind, a direct conversation's peer and the processed check. */
  async loadConversationForMessage(
    groupId: string,
    digest: string,
  ): Promise<ConversationMessageLoad | undefined> {
    const rows = await this.withSql((s) => s.rows(MESSAGE_LOAD_SELECT, [groupId, digest, groupId]));
    const row = rows[0];
    if (!row) return undefined;
    const conversation = rowToConversation(row, this.cipher);
    const processed = toBool(row.processed_hit);
    if (row.p_user_id === null || row.p_user_id === undefined) return { conversation, processed };
    const peer = rowToPeer(Object.fromEntries(PEER_COLUMNS.map((c) => [c, row[`p_${c}`]])));
    return { conversation, processed, peer };
  }

  async loadForMessage(groupId: string, digest: string): Promise<MessageLoad | undefined> {
    return directMessageLoad(await this.loadConversationForMessage(groupId, digest));
  }

  async loadGroupForMessage(groupId: string, digest: string): Promise<GroupMessageLoad | undefined> {
    return groupMessageLoad(await this.loadConversationForMessage(groupId, digest));
  }

  async hasEnvelope(digest: string, now: UnixSeconds): Promise<boolean> {
    const sql = `SELECT 1 AS "hit" FROM "envelopes" WHERE "digest" = ? AND "expires_at" >= ?`;
    return (await this.withSql((s) => s.rows(sql, [digest, now]))).length > 0;
  }

  async hasWelcome(digest: string, since: UnixSeconds): Promise<boolean> {
    const sql = `SELECT 1 AS "hit" FROM "welcomes" WHERE "digest" = ? AND "at" >= ?`;
    return (await this.withSql((s) => s.rows(sql, [digest, since]))).length > 0;
  }

  async prune(now: UnixSeconds): Promise<void> {
    const weekAgo = now - WEEK_SECONDS;
    await this.transaction(async (s) => {
      await s.run(`DELETE FROM "envelopes" WHERE "expires_at" < ?`, [now]);
      await s.run(`DELETE FROM "welcomes" WHERE "at" < ?`, [weekAgo]);
      await s.run(`DELETE FROM "processed" WHERE "at" < ?`, [weekAgo]);
    });
  }

  // ---- outbox and conversation data -------------------------------------------------------------

  async listOutbox(limit = 1000): Promise<OutboxRecord[]> {
    return (await this.withSql((s) => s.rows(OUTBOX_SELECT, [limit]))).map(rowToOutbox);
  }

  async deleteOutbox(ids: string[]): Promise<void> {
    await this.deleteIn('outbox', 'id', ids);
  }

  async quarantineOutbox(ids: string[], at: UnixSeconds): Promise<void> {
    if (ids.length === 0) return;
    await this.transaction(async (s) => {
      for (const id of ids) await s.run(OUTBOX_QUARANTINE, [at, id, id]);
    });
  }

  // ---- parked inbound messages ------------------------------------------------------------------

  async parkInbound(record: ParkedInboundRecord): Promise<void> {
    await this.withSql((s) => s.run(PARKED_INSERT, parkedParams(record)));
  }

  async listParkedInbound(limit = 1000): Promise<ParkedInboundRecord[]> {
    return (await this.withSql((s) => s.rows(PARKED_SELECT, [limit]))).map(rowToParked);
  }

  async deleteParkedInbound(id: string): Promise<void> {
    await this.withSql((s) => s.run(`DELETE FROM "parked_inbound" WHERE "id" = ?`, [id]));
  }

  async getConversationData(conversationId: string): Promise<string | undefined> {
    const sql = `SELECT "conversation_id", "json", "at_rest" FROM "conversation_data" WHERE "conversation_id" = ?`;
    const rows = await this.withSql((s) => s.rows(sql, [conversationId]));
    return rows[0] && rowToConversationJson(rows[0], this.cipher);
  }

  async listConversationData(prefix: string): Promise<Array<{ conversationId: string; json: string }>> {
    // Compared as a range rather than with LIKE, so '%' and '_' in a prefix are not wildcards.
    const sql = `SELECT "conversation_id", "json", "at_rest" FROM "conversation_data"
      WHERE "conversation_id" >= ? AND "conversation_id" < ? ORDER BY "conversation_id"`;
    const rows = await this.withSql((s) => s.rows(sql, [prefix, `${prefix}\uffff`]));
    return rows.map((r) => ({
      conversationId: String(r.conversation_id),
      json: rowToConversationJson(r, this.cipher),
    }));
  }

  private async deleteIn(table: string, column: string, values: string[]): Promise<void> {
    const del = (s: Sql, part: string[]) =>
      s.run(`DELETE FROM "${table}" WHERE "${column}" IN (${placeholders(part.length)})`, part);
    if (values.length === 0) return;
    // One statement is atomic on its own: no BEGIN and COMMIT round trips (the outbox cleanup).
    if (values.length <= IN_CHUNK) await this.withSql((s) => del(s, values));
    else
      await this.transaction(async (s) => {
        for (const part of chunks(values)) await del(s, part);
      });
  }

  // ---- commit -----------------------------------------------------------------------------------

  async commit(changes: InboundCommit): Promise<void> {
    await this.ready();
    const rows = this.versionedRows(changes);
    const sole = this.backend === 'postgres' ? soleStoredRow(changes, rows) : undefined;
    if (sole && foldsCompletely(changes)) {
      // One statement is one transaction: no BEGIN and COMMIT round trips (see foldedUpdate).
      await this.withSql((s) => this.foldedUpdate(s, sole, changes));
      return;
    }
    await this.transaction(async (s) => {
      let outbox = changes.outbox ?? [];
      if (sole) {
        // The common case (a message in an established session or group): see foldedUpdate.
        await this.foldedUpdate(s, sole, changes);
        if (outbox.length === 1) outbox = [];
      } else {
        const existing = await this.lockVersions(s, rows);
        const deleted = await this.deleteConversations(s, changes);
        for (const row of rows)
          await this.writeVersioned(s, row, existing.has(row) && !deleted.has(row.groupId));
      }
      for (const o of outbox) await s.run(OUTBOX_INSERT, outboxParams(o));
      for (const d of changes.conversationData ?? []) {
        if (d.json === CONVERSATION_DATA_DELETED)
          await s.run(`DELETE FROM "conversation_data" WHERE "conversation_id" = ?`, [d.conversationId]);
        else await s.run(CONVERSATION_UPSERT, conversationParams(d.conversationId, d.json, this.cipher));
      }
      for (const p of changes.peers ?? []) await s.run(PEER_UPSERT, peerParams(p));
      await this.writeReplayRecords(s, changes, sole !== undefined);
    });
  }

  /** Deletes a commit's deleteSessions and deleteGroups, each only as its kind; returns their ids. */
  private async deleteConversations(s: Sql, c: InboundCommit): Promise<Set<string>> {
    const byKind: Array<[ConversationKind, string[]]> = [
      ['direct', c.deleteSessions ?? []],
      ['group', c.deleteGroups ?? []],
    ];
    for (const [kind, ids] of byKind)
      for (const g of ids)
        await s.run(`DELETE FROM "conversations" WHERE "group_id" = ? AND "kind" = ?`, [g, kind]);
    return new Set(byKind.flatMap(([, ids]) => ids));
  }

  /** Sessions, then groups, of a commit; sealed once here, before any statement runs. */
  private versionedRows(c: InboundCommit): VersionedRow[] {
    return [
      ...(c.sessions ?? []).map((r): VersionedRow => ({
        kind: 'direct',
        groupId: r.groupId,
        version: r.version,
        values: sessionParams(r, this.cipher),
      })),
      ...(c.groups ?? []).map((r): VersionedRow => ({
        kind: 'group',
        groupId: r.groupId,
        version: r.version,
        values: groupParams(r, this.cipher),
      })),
    ];
  }

  /**
   * Postgres, one stored session or group and nothing deleted: the compare-and-set UPDATE of that
   * row, a single outbox row and the processed and replay-cache upserts go in one statement (data-
   * modifying CTEs). The inserts happen only when the UPDATE matched (WHERE EXISTS on its
   * RETURNING), and one statement is atomic, so on its own it is the whole transaction (commit()
   * then skips BEGIN and COMMIT); inside a transaction with further writes it is its first write.
   * The UPDATE takes the row lock lockVersions would (a concurrent writer waits, then fails its
   * version check); a version mismatch writes nothing and throws StaleStateError.
   */
  private async foldedUpdate(s: Sql, row: VersionedRow, c: InboundCommit): Promise<void> {
    const parts: Array<{ sql: string; params: unknown[] }> = [];
    if (c.outbox?.length === 1) parts.push({ sql: OUTBOX_IF_UPDATED, params: outboxParams(c.outbox[0]!) });
    if (c.processed) {
      const { groupId, digest, at } = c.processed;
      parts.push({ sql: PROCESSED_IF_UPDATED, params: [groupId, digest, at] });
    }
    if (c.envelope)
      parts.push({ sql: ENVELOPE_IF_UPDATED, params: [c.envelope.digest, c.envelope.expiresAt] });
    const sql = `WITH "updated" AS (${VERSIONED_SQL.update} RETURNING 1)${parts
      .map((p, i) => `, "w${i}" AS (${p.sql})`)
      .join('')} SELECT count(*) AS "n" FROM "updated"`;
    const params = [...row.values, row.groupId, row.version, row.kind, ...parts.flatMap((p) => p.params)];
    const result = await s.rows(sql, params);
    if (toInt(result[0]?.n) !== 1) await this.throwConflict(s, row);
  }

  /**
   * Locks the stored rows of the given sessions and groups (Postgres; SQLite is serialised already)
   * and checks their versions. Returns those that have a row. Locks are taken in one global order
   * (by group id) so two commits touching the same rows cannot deadlock.
   */
  private async lockVersions(s: Sql, rows: VersionedRow[]): Promise<Set<VersionedRow>> {
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

  private async writeVersioned(s: Sql, row: VersionedRow, exists: boolean): Promise<void> {
    const changed = exists
      ? await s.run(VERSIONED_SQL.update, [...row.values, row.groupId, row.version, row.kind])
      : await s.run(VERSIONED_SQL.insert, [row.groupId, ...row.values, row.version + 1]);
    if (changed === 1) return;
    await this.throwConflict(s, row);
  }

  /**
   * Why a compare-and-set write changed no row: a newer version, the group id stored as the other
   * kind, or (an insert) a taken topic id.
   */
  private async throwConflict(s: Sql, row: VersionedRow): Promise<never> {
    const found = await s.rows(VERSIONED_SQL.version, [row.groupId]);
    const stored = found[0] ? toInt(found[0].version) : 0;
    if (stored !== row.version) throw new StaleStateError(row.groupId, row.version, stored);
    if (found[0] && found[0].kind !== row.kind)
      throw new StorageError(`conversation ${row.groupId} is stored as kind ${String(found[0].kind)}`);
    throw new StorageError(`cannot insert ${row.kind} conversation ${row.groupId}: a unique column is taken`);
  }

  /** `folded`: processed and envelope were written by foldedUpdate already. */
  private async writeReplayRecords(s: Sql, c: InboundCommit, folded: boolean): Promise<void> {
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

  async close(): Promise<void> {
    // Let queued SQLite work finish before the connection goes away.
    await this.serial(async () => undefined);
    if (this.closeDataSource && this.ds.isInitialized) await this.ds.destroy();
  }
}
