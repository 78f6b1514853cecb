/**
 * RelayStore on TypeORM (Postgres or SQLite through better-sqlite3), with the semantics of
 * MemoryRelayStore. commit() is one database transaction guarded by optimistic versions on every
 * conversation row it writes (typeorm-commit.ts); the reads and the other writes are here.
 */
import type { DataSource } from 'typeorm';
import type { UnixSeconds } from '../relay/brand.js';
import { directMessageLoad, groupMessageLoad, MESSAGE_SENDER_SECONDS } from '../relay/store.js';
import type {
  ConversationMessageLoad,
  EnvelopeLookup,
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
  rowToConversation,
  rowToGroup,
  rowToGroupSummary,
  rowToSession,
  rowToSessionAccess,
} from './conversation-rows.js';
import {
  identityParams,
  keyPackageParams,
  ownBundleParams,
  parkedParams,
  peerParams,
  rowToIdentity,
  rowToKeyPackage,
  rowToOutbox,
  rowToConversationJson,
  rowToOwnBundle,
  rowToParked,
  rowToPeer,
  IDENTITY_ROW_ID,
  OWN_BUNDLE_ROW_ID,
} from './mapping.js';
import { TypeOrmLeaseStore } from './lease-store.js';
import { SqlRunner } from './sql-runner.js';
import { backendOf, placeholders, type Sql } from './sql.js';
import {
  GROUP_SELECT,
  GROUP_SUMMARY_SELECT,
  IDENTITY_UPSERT,
  KEY_PACKAGE_UPSERT,
  OUTBOX_CLAIM,
  OUTBOX_OWNERS,
  OUTBOX_QUARANTINE,
  OUTBOX_SELECT,
  OUTBOX_SELECT_OF_REPLICA,
  OWN_BUNDLE_UPSERT,
  PARKED_INSERT,
  PARKED_SELECT,
  PEER_UPSERT,
  SESSION_ACCESS_SELECT,
  SESSION_SELECT,
} from './statements.js';
import { commitChanges } from './typeorm-commit.js';
import { CommitBatcher } from './commit-batch.js';
import { MessageLoadBatcher, rowToMessageLoad } from './message-load-batch.js';
import { SenderReadBatcher } from './sender-read-batch.js';

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

/** RelayStore on Postgres or embedded SQLite through TypeORM, with optional encryption at rest. */
export class TypeOrmRelayStore implements RelayStore {
  readonly backend: RelayBackend;
  private readonly stateKey: StoreStateKey;
  private readonly runner: SqlRunner;
  private readonly batcher: CommitBatcher;
  private readonly loads: MessageLoadBatcher;
  private readonly senderReads: SenderReadBatcher;
  private readonly closeDataSource: boolean;
  /** Leases and the replica registry on the same database, in turn with this store on SQLite. */
  readonly leases: TypeOrmLeaseStore;

  constructor(
    private readonly ds: DataSource,
    options: TypeOrmRelayStoreOptions = {},
  ) {
    this.backend = backendOf(ds);
    this.runner = new SqlRunner(ds, this.backend);
    this.loads = new MessageLoadBatcher(this.runner);
    this.senderReads = new SenderReadBatcher(this.runner);
    this.batcher = new CommitBatcher(this.runner, (c) => commitChanges(this.runner, this.cipher, c));
    this.stateKey = new StoreStateKey(options.stateKey, (fn) => this.runner.transaction(fn), options.scrypt);
    this.closeDataSource = options.closeDataSource ?? true;
    this.leases = new TypeOrmLeaseStore(ds, (fn) => this.runner.serial(fn));
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

  private async withSql<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    await this.ready();
    return this.runner.once(fn);
  }

  private async transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    await this.ready();
    return this.runner.transaction(fn);
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

  /**
   * One statement: the row of either kind, a direct conversation's peer, the processed check and,
   * when asked, the envelope replay check (a null digest matches no envelope). Loads made while
   * another is in flight share one statement (message-load-batch.ts); the row is mapped here, so
   * a row that cannot be read (a wrong state key) fails only its own caller. At `heldVersion` the
   * state columns come back NULL and are not opened (statements.ts conversationColumnsHolding).
   */
  async loadConversationForMessage(
    groupId: string,
    digest: string,
    envelope?: EnvelopeLookup,
    heldVersion?: number,
  ): Promise<ConversationMessageLoad | undefined> {
    await this.ready();
    const query = { groupId, digest, envelopeDigest: envelope?.digest ?? null, now: envelope?.now ?? 0 };
    const row = await this.loads.load({ ...query, held: heldVersion ?? null });
    return row && rowToMessageLoad(row, this.cipher, envelope !== undefined, heldVersion ?? null);
  }

  async loadForMessage(
    groupId: string,
    digest: string,
    envelope?: EnvelopeLookup,
    heldVersion?: number,
  ): Promise<MessageLoad | undefined> {
    return directMessageLoad(await this.loadConversationForMessage(groupId, digest, envelope, heldVersion));
  }

  async loadGroupForMessage(
    groupId: string,
    digest: string,
    heldVersion?: number,
  ): Promise<GroupMessageLoad | undefined> {
    return groupMessageLoad(await this.loadConversationForMessage(groupId, digest, undefined, heldVersion));
  }

  /** Reads made while another is in flight share one statement (sender-read-batch.ts). */
  async messageSenders(groupId: string, messageIds: readonly string[]): Promise<Map<string, string>> {
    if (messageIds.length === 0) return new Map();
    await this.ready();
    return this.senderReads.get({ groupId, messageIds: [...new Set(messageIds)] });
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
      await s.run(`DELETE FROM "message_senders" WHERE "at" < ?`, [now - MESSAGE_SENDER_SECONDS]);
    });
  }

  // ---- outbox and conversation data -------------------------------------------------------------

  async listOutbox(limit = 1000, replica?: string): Promise<OutboxRecord[]> {
    const rows = await this.withSql((s) =>
      replica === undefined
        ? s.rows(OUTBOX_SELECT, [limit])
        : s.rows(OUTBOX_SELECT_OF_REPLICA, [replica, limit]),
    );
    return rows.map(rowToOutbox);
  }

  async listOutboxOwners(): Promise<string[]> {
    return (await this.withSql((s) => s.rows(OUTBOX_OWNERS, []))).map((r) => String(r.replica));
  }

  async claimOutbox(from: string, to: string): Promise<number> {
    if (from === to) return 0;
    return this.withSql((s) => s.run(OUTBOX_CLAIM, [to, from]));
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

  /** Postgres batches concurrent commits of different conversations (commit-batch.ts). */
  async commit(changes: InboundCommit): Promise<void> {
    await this.ready();
    await this.batcher.commit(changes, this.cipher);
  }

  async close(): Promise<void> {
    // Let queued SQLite work finish before the connection goes away.
    await this.runner.serial(async () => undefined);
    if (this.closeDataSource && this.ds.isInitialized) await this.ds.destroy();
  }
}
