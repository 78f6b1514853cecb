/**
 * What the relay layer needs from durable storage. framework/store implements it on TypeORM;
 * MemoryRelayStore below implements it for tests and throwaway clients.
 *
 * Every change caused by one inbound message goes through a single `commit()` call so that a
 * durable implementation can make it one transaction: state, dedupe record and replay-cache entry
 * land together or not at all.
 */
import type { UnixSeconds } from './brand.js';
import { StaleStateError, StorageError } from './errors.js';

/** Writing this JSON for a conversation deletes its data. */
export const CONVERSATION_DATA_DELETED = 'null';

export interface StoredIdentity {
  signingSeed: Uint8Array;
  sealSecret: Uint8Array;
  createdAt: UnixSeconds;
}

export interface StoredKeyPackage {
  /** Hex of the KeyPackageRef: the id a Welcome names. */
  ref: string;
  keyPackage: Uint8Array;
  privateKeyPackage: Uint8Array;
  createdAt: UnixSeconds;
  notAfter: UnixSeconds;
  /** When a Welcome consumed it; its private keys live on for a grace period (PROTOCOL.md §4). */
  consumedAt?: UnixSeconds;
  /** When a newer bundle replaced it unused; kept 7 days for late initiators. */
  supersededAt?: UnixSeconds;
}

export interface OwnBundle {
  bytes: Uint8Array;
  issuedAt: UnixSeconds;
  keyPackageRef: string;
}

export interface PeerRecord {
  /** Hex user id. */
  userId: string;
  identityKey: Uint8Array;
  sealKey: Uint8Array;
  powBits: number;
  /** Highest bundle issued_at accepted from this peer (newer-only rule, PROTOCOL.md §4). */
  bundleIssuedAt?: UnixSeconds;
  displayName?: string;
}

/** A 1:1 session: the MLS group shared with one peer (PROTOCOL.md §7). */
export interface SessionRecord {
  /** Hex group id. */
  groupId: string;
  /** Hex user id of the peer. */
  peerId: string;
  /** Encoded MLS state (format-versioned by the MLS module). */
  state: Uint8Array;
  epoch: bigint;
  /** True when we created the group and have received nothing from the peer in it yet. */
  initiatedUnconfirmed: boolean;
  /** Access keys (PROTOCOL.md §5) for envelopes addressed to us, current and previous epoch. */
  inboundAccess: { current: Uint8Array; previous?: Uint8Array };
  /** Application messages sent or seen since the last commit, for key refresh. */
  messagesSinceCommit: number;
  /** Plaintexts sent while unconfirmed, re-sent if this group loses a simultaneous-initiation race. */
  unconfirmedOutgoing: string[];
  updatedAt: UnixSeconds;
  /**
   * When the session was set up, as long as the peer has not sent an application message in it;
   * absent once it has (and for sessions stored before this field existed). Housekeeping deletes
   * sessions unused for 24 hours (PROTOCOL.md §10).
   */
  unusedSince?: UnixSeconds;
  /**
   * The stored row's version when this record was read (0 for a new session). A commit writes
   * version + 1 and fails with StaleStateError when the stored version is no longer this one, so a
   * second process or a stale cache can never overwrite newer state.
   */
  version: number;
}

/** An N-way group we are a member of (PROTOCOL.md §9). */
export interface GroupRecord {
  /** Hex group id, 64 chars. */
  groupId: string;
  /** Hex topic id, 32 chars (topicIdFromGroupId); unique, as it is derived from the group id. */
  topicId: string;
  /** mls.encodeSession bytes. */
  state: Uint8Array;
  epoch: bigint;
  /** Protocol bookkeeping owned by the relay layer, stored as JSON text (opaque to the store). */
  meta: string;
  updatedAt: UnixSeconds;
  /** Same compare-and-set rule as SessionRecord.version. */
  version: number;
}

/** What start-up needs of a session: its access keys for the hint index, not its MLS state. */
export interface SessionAccessRecord {
  groupId: string;
  inboundAccess: { current: Uint8Array; previous?: Uint8Array };
}

/** What start-up and housekeeping need of a group to decide whether to load its MLS state. */
export interface GroupSummaryRecord {
  groupId: string;
  topicId: string;
  /** GroupRecord.meta. */
  meta: string;
}

/**
 * An inbound MQTT message kept so that its PUBACK can leave before its slow handler finishes
 * (parking.ts); deleted once it was processed, re-run at start-up otherwise.
 */
export interface ParkedInboundRecord {
  id: string;
  topic: string;
  payload: Uint8Array;
  arrivedAt: UnixSeconds;
}

/** A sealed payload waiting to be published; written in the same transaction as the state it came from. */
export interface OutboxRecord {
  id: string;
  topic: string;
  payload: Uint8Array;
  retain?: boolean;
  messageExpirySeconds?: number;
  /**
   * Publish later rows only after the broker acknowledged this one. Stored as a flag, so it reads
   * back as `true` or absent (false and absent are the same thing).
   */
  awaitAck?: boolean;
  /**
   * The id of a row committed with this one that must be published first (a group commit, for its
   * Welcomes): if that row is quarantined, so is this one.
   */
  dependsOn?: string;
  createdAt: UnixSeconds;
}

export interface InboundCommit {
  /** Sessions to insert or replace. */
  sessions?: SessionRecord[];
  /** Hex group ids of sessions to delete (replaced by a newer Welcome, lost a race). */
  deleteSessions?: string[];
  /** N-way groups to insert or replace, under the same version rule as sessions. */
  groups?: GroupRecord[];
  /** Hex group ids of N-way groups to delete (we left or were removed). */
  deleteGroups?: string[];
  peers?: PeerRecord[];
  /** Dedupe record: hex group id + hex digest of the MLS message. */
  processed?: { groupId: string; digest: string; at: UnixSeconds };
  /** Replay cache entry: hex SHA-256 of the envelope, kept until expiresAt. */
  envelope?: { digest: string; expiresAt: UnixSeconds };
  /** Hex SHA-256 of a Welcome MLSMessage, dropped if seen again within 7 days. */
  welcome?: { digest: string; at: UnixSeconds };
  /** Hex ref of a key package a Welcome consumed. */
  consumedKeyPackage?: { ref: string; at: UnixSeconds };
  /** Payloads to publish once this commit is durable, in this order. */
  outbox?: OutboxRecord[];
  /**
   * Per-conversation JSON the bot layer keeps with the MLS state (ctx.session, scheduled jobs).
   * The JSON text `null` (CONVERSATION_DATA_DELETED) deletes the entry.
   */
  conversationData?: Array<{ conversationId: string; json: string }>;
}

/** What loadForMessage() reads for an inbound application or handshake message. */
export interface MessageLoad {
  session: SessionRecord;
  /** hasProcessed(groupId, digest). */
  processed: boolean;
  /** getPeer(session.peerId). */
  peer: PeerRecord | undefined;
}

/** What loadGroupForMessage() reads for a message on a group topic. */
export interface GroupMessageLoad {
  group: GroupRecord;
  /** hasProcessed(groupId, digest). */
  processed: boolean;
}

/** The storage a RelayClient needs: identity, key packages, conversations, dedupe records and the outbox. */
export interface RelayStore {
  loadIdentity(): Promise<StoredIdentity | undefined>;
  saveIdentity(identity: StoredIdentity): Promise<void>;

  putKeyPackage(kp: StoredKeyPackage): Promise<void>;
  listKeyPackages(): Promise<StoredKeyPackage[]>;
  markKeyPackagesSuperseded(exceptRef: string, at: UnixSeconds): Promise<void>;
  deleteKeyPackages(refs: string[]): Promise<void>;
  loadOwnBundle(): Promise<OwnBundle | undefined>;
  saveOwnBundle(bundle: OwnBundle): Promise<void>;

  getPeer(userId: string): Promise<PeerRecord | undefined>;
  putPeer(peer: PeerRecord): Promise<void>;

  getSession(groupId: string): Promise<SessionRecord | undefined>;
  getSessionByPeer(peerId: string): Promise<SessionRecord | undefined>;
  listSessions(): Promise<SessionRecord[]>;
  /** Every session's access keys, in group id order; no MLS state is read. */
  listSessionAccess(): Promise<SessionAccessRecord[]>;
  /**
   * Deletes the sessions whose peer never sent an application message and that were set up before
   * `before`; returns their group ids.
   */
  deleteUnusedSessions(before: UnixSeconds): Promise<string[]>;

  getGroup(groupId: string): Promise<GroupRecord | undefined>;
  getGroupByTopic(topicId: string): Promise<GroupRecord | undefined>;
  /** All groups, in group id order. */
  listGroups(): Promise<GroupRecord[]>;
  /** All groups without their MLS state, in group id order. */
  listGroupSummaries(): Promise<GroupSummaryRecord[]>;

  hasProcessed(groupId: string, digest: string): Promise<boolean>;
  /**
   * getSession(groupId), hasProcessed(groupId, digest) and getPeer(session.peerId) in one read,
   * which is what every inbound message needs; one round trip instead of three on a database.
   * Undefined when there is no such session.
   */
  loadForMessage(groupId: string, digest: string): Promise<MessageLoad | undefined>;
  /**
   * getGroup(groupId) and hasProcessed(groupId, digest) in one read, for every message on a group
   * topic. Undefined when there is no such group.
   */
  loadGroupForMessage(groupId: string, digest: string): Promise<GroupMessageLoad | undefined>;
  hasEnvelope(digest: string, now: UnixSeconds): Promise<boolean>;
  hasWelcome(digest: string, since: UnixSeconds): Promise<boolean>;
  /** Drop expired replay-cache entries, and Welcome and processed digests older than 7 days. */
  prune(now: UnixSeconds): Promise<void>;

  /** Stores a parked inbound message; durable when this resolves. */
  parkInbound(record: ParkedInboundRecord): Promise<void>;
  /** Parked inbound messages in the order they were parked. */
  listParkedInbound(limit?: number): Promise<ParkedInboundRecord[]>;
  deleteParkedInbound(id: string): Promise<void>;

  /** Outbox rows in the order they were committed, quarantined ones left out. */
  listOutbox(limit?: number): Promise<OutboxRecord[]>;
  deleteOutbox(ids: string[]): Promise<void>;
  /**
   * Sets rows that can never be published aside, with the rows that depend on them (dependsOn):
   * listOutbox no longer returns them; they stay stored for the operator to inspect.
   */
  quarantineOutbox(ids: string[], at: UnixSeconds): Promise<void>;

  getConversationData(conversationId: string): Promise<string | undefined>;
  /** All conversation data whose id starts with the prefix (e.g. a bot's scheduled jobs). */
  listConversationData(prefix: string): Promise<Array<{ conversationId: string; json: string }>>;

  /**
   * Apply all changes of one verified input atomically. Throws StaleStateError (and applies
   * nothing) when a session's or group's stored version differs from the version it was read at.
   */
  commit(changes: InboundCommit): Promise<void>;

  /** Release connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

const copySession = (s: SessionRecord): SessionRecord => ({
  ...s,
  state: s.state.slice(),
  inboundAccess: { ...s.inboundAccess },
  unconfirmedOutgoing: [...s.unconfirmedOutgoing],
});

const copyParked = (p: ParkedInboundRecord): ParkedInboundRecord => ({ ...p, payload: p.payload.slice() });

const copyGroup = (g: GroupRecord): GroupRecord => ({ ...g, state: g.state.slice() });

// Normalised the way a database column with default false reads back, so both stores agree.
const copyOutbox = ({ awaitAck, ...o }: OutboxRecord): OutboxRecord => ({
  ...o,
  payload: o.payload.slice(),
  ...(awaitAck ? { awaitAck: true } : {}),
});

const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * One stored conversation of either kind, keyed by its group id: the in-memory picture of the
 * database stores' one `conversations` table.
 */
type StoredConversation = { kind: 'direct'; session: SessionRecord } | { kind: 'group'; group: GroupRecord };

const versionOf = (c: StoredConversation | undefined): number =>
  c === undefined ? 0 : c.kind === 'direct' ? c.session.version : c.group.version;

/**
 * The compare-and-set rule of commit(), one check for both kinds: a record's version must be the
 * stored one (0: none stored), and a group id keeps its kind.
 */
function checkVersions(stored: ReadonlyMap<string, StoredConversation>, c: InboundCommit): void {
  const records = [
    ...(c.sessions ?? []).map((r) => ({ kind: 'direct', groupId: r.groupId, version: r.version })),
    ...(c.groups ?? []).map((r) => ({ kind: 'group', groupId: r.groupId, version: r.version })),
  ];
  for (const r of records) {
    const found = stored.get(r.groupId);
    const version = versionOf(found);
    if (version !== r.version) throw new StaleStateError(r.groupId, r.version, version);
    if (found && found.kind !== r.kind)
      throw new StorageError(`conversation ${r.groupId} is stored as kind ${found.kind}`);
  }
}

/**
 * In-memory RelayStore. Copies on the way in and out so callers cannot alias stored state, which
 * keeps it honest as a stand-in for a database in tests.
 */
export class MemoryRelayStore implements RelayStore {
  private identity: StoredIdentity | undefined;
  private readonly keyPackages = new Map<string, StoredKeyPackage>();
  private ownBundle: OwnBundle | undefined;
  private readonly peers = new Map<string, PeerRecord>();
  private readonly conversations = new Map<string, StoredConversation>();
  private readonly processed = new Map<string, UnixSeconds>();
  private readonly envelopes = new Map<string, UnixSeconds>();
  private readonly welcomes = new Map<string, UnixSeconds>();
  private readonly outbox: OutboxRecord[] = [];
  private readonly quarantined: Array<OutboxRecord & { quarantinedAt: UnixSeconds }> = [];
  private readonly parked: ParkedInboundRecord[] = [];
  private readonly conversationData = new Map<string, string>();

  private get sessions(): SessionRecord[] {
    return [...this.conversations.values()].flatMap((c) => (c.kind === 'direct' ? [c.session] : []));
  }

  private get groups(): GroupRecord[] {
    return [...this.conversations.values()].flatMap((c) => (c.kind === 'group' ? [c.group] : []));
  }

  private sessionAt(groupId: string): SessionRecord | undefined {
    const c = this.conversations.get(groupId);
    return c?.kind === 'direct' ? c.session : undefined;
  }

  private groupAt(groupId: string): GroupRecord | undefined {
    const c = this.conversations.get(groupId);
    return c?.kind === 'group' ? c.group : undefined;
  }

  async loadIdentity() {
    return this.identity && { ...this.identity };
  }
  async saveIdentity(identity: StoredIdentity) {
    this.identity = { ...identity };
  }
  async putKeyPackage(kp: StoredKeyPackage) {
    this.keyPackages.set(kp.ref, { ...kp });
  }
  async listKeyPackages() {
    return [...this.keyPackages.values()].map((k) => ({ ...k }));
  }
  async markKeyPackagesSuperseded(exceptRef: string, at: UnixSeconds) {
    for (const kp of this.keyPackages.values()) {
      if (kp.ref !== exceptRef && kp.supersededAt === undefined) kp.supersededAt = at;
    }
  }
  async deleteKeyPackages(refs: string[]) {
    for (const r of refs) this.keyPackages.delete(r);
  }
  async loadOwnBundle() {
    return this.ownBundle && { ...this.ownBundle };
  }
  async saveOwnBundle(bundle: OwnBundle) {
    this.ownBundle = { ...bundle };
  }
  async getPeer(userId: string) {
    const p = this.peers.get(userId);
    return p && { ...p };
  }
  async putPeer(peer: PeerRecord) {
    this.peers.set(peer.userId, { ...peer });
  }
  async getSession(groupId: string) {
    const s = this.sessionAt(groupId);
    return s && copySession(s);
  }
  async getSessionByPeer(peerId: string) {
    for (const s of this.sessions) if (s.peerId === peerId) return copySession(s);
    return undefined;
  }
  async listSessions() {
    return this.sessions.map(copySession);
  }
  async listSessionAccess() {
    return this.sessions
      .sort((a, b) => compareStrings(a.groupId, b.groupId))
      .map((s) => ({ groupId: s.groupId, inboundAccess: copySession(s).inboundAccess }));
  }
  async deleteUnusedSessions(before: UnixSeconds) {
    const expired = this.sessions
      .filter((s) => s.unusedSince !== undefined && s.unusedSince < before)
      .map((s) => s.groupId)
      .sort(compareStrings);
    for (const g of expired) this.conversations.delete(g);
    return expired;
  }
  async getGroup(groupId: string) {
    const g = this.groupAt(groupId);
    return g && copyGroup(g);
  }
  async getGroupByTopic(topicId: string) {
    for (const g of this.groups) if (g.topicId === topicId) return copyGroup(g);
    return undefined;
  }
  async listGroups() {
    return this.groups.sort((a, b) => compareStrings(a.groupId, b.groupId)).map(copyGroup);
  }
  async listGroupSummaries() {
    return this.groups
      .sort((a, b) => compareStrings(a.groupId, b.groupId))
      .map(({ groupId, topicId, meta }) => ({ groupId, topicId, meta }));
  }
  async hasProcessed(groupId: string, digest: string) {
    return this.processed.has(`${groupId}:${digest}`);
  }
  /** The one read behind loadForMessage and loadGroupForMessage, as in the database stores. */
  private async loadConversation(groupId: string, digest: string) {
    const c = this.conversations.get(groupId);
    return c && { conversation: c, processed: await this.hasProcessed(groupId, digest) };
  }
  async loadForMessage(groupId: string, digest: string): Promise<MessageLoad | undefined> {
    const found = await this.loadConversation(groupId, digest);
    if (found?.conversation.kind !== 'direct') return undefined;
    const session = copySession(found.conversation.session);
    return { session, processed: found.processed, peer: await this.getPeer(session.peerId) };
  }
  async loadGroupForMessage(groupId: string, digest: string): Promise<GroupMessageLoad | undefined> {
    const found = await this.loadConversation(groupId, digest);
    if (found?.conversation.kind !== 'group') return undefined;
    return { group: copyGroup(found.conversation.group), processed: found.processed };
  }
  async hasEnvelope(digest: string, now: UnixSeconds) {
    const exp = this.envelopes.get(digest);
    return exp !== undefined && exp >= now;
  }
  async hasWelcome(digest: string, since: UnixSeconds) {
    const at = this.welcomes.get(digest);
    return at !== undefined && at >= since;
  }
  async prune(now: UnixSeconds) {
    for (const [d, exp] of this.envelopes) if (exp < now) this.envelopes.delete(d);
    const weekAgo = now - 7 * 86400;
    for (const [d, at] of this.welcomes) if (at < weekAgo) this.welcomes.delete(d);
    for (const [d, at] of this.processed) if (at < weekAgo) this.processed.delete(d);
  }
  /** A deep, comparable picture of everything stored, for tests that assert nothing changed. */
  dump(): string {
    const hex = (_k: string, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? v.toString() : v;
    return JSON.stringify(
      {
        identity: this.identity,
        keyPackages: [...this.keyPackages.entries()].sort(),
        ownBundle: this.ownBundle,
        peers: [...this.peers.entries()].sort(),
        conversations: [...this.conversations.entries()].sort(),
        processed: [...this.processed.entries()].sort(),
        envelopes: [...this.envelopes.entries()].sort(),
        welcomes: [...this.welcomes.entries()].sort(),
        outbox: this.outbox,
        quarantined: this.quarantined,
        parked: this.parked,
        conversationData: [...this.conversationData.entries()].sort(),
      },
      hex,
    );
  }

  async listOutbox(limit = 1000) {
    return this.outbox.slice(0, limit).map(copyOutbox);
  }
  async deleteOutbox(ids: string[]) {
    const drop = new Set(ids);
    for (let i = this.outbox.length - 1; i >= 0; i--)
      if (drop.has(this.outbox[i]!.id)) this.outbox.splice(i, 1);
  }
  async quarantineOutbox(ids: string[], at: UnixSeconds) {
    const set = new Set(ids);
    const moved = this.outbox.filter(
      (o) => set.has(o.id) || (o.dependsOn !== undefined && set.has(o.dependsOn)),
    );
    for (const o of moved) this.quarantined.push({ ...o, quarantinedAt: at });
    await this.deleteOutbox(moved.map((o) => o.id));
  }
  async parkInbound(record: ParkedInboundRecord) {
    this.parked.push(copyParked(record));
  }
  async listParkedInbound(limit = 1000) {
    return this.parked.slice(0, limit).map(copyParked);
  }
  async deleteParkedInbound(id: string) {
    const i = this.parked.findIndex((p) => p.id === id);
    if (i !== -1) this.parked.splice(i, 1);
  }
  async getConversationData(conversationId: string) {
    return this.conversationData.get(conversationId);
  }
  async listConversationData(prefix: string) {
    return [...this.conversationData.entries()]
      .filter(([id]) => id.startsWith(prefix))
      .sort(([a], [b]) => compareStrings(a, b))
      .map(([conversationId, json]) => ({ conversationId, json }));
  }
  async close() {}

  async commit(c: InboundCommit) {
    checkVersions(this.conversations, c);
    this.checkTopicsUnique(c);
    for (const g of c.deleteSessions ?? []) if (this.sessionAt(g)) this.conversations.delete(g);
    for (const g of c.deleteGroups ?? []) if (this.groupAt(g)) this.conversations.delete(g);
    for (const s of c.sessions ?? [])
      this.conversations.set(s.groupId, {
        kind: 'direct',
        session: { ...copySession(s), version: s.version + 1 },
      });
    for (const g of c.groups ?? [])
      this.conversations.set(g.groupId, {
        kind: 'group',
        group: { ...copyGroup(g), version: g.version + 1 },
      });
    for (const o of c.outbox ?? []) this.outbox.push(copyOutbox(o));
    for (const d of c.conversationData ?? []) {
      if (d.json === CONVERSATION_DATA_DELETED) this.conversationData.delete(d.conversationId);
      else this.conversationData.set(d.conversationId, d.json);
    }
    for (const p of c.peers ?? []) this.peers.set(p.userId, { ...p });
    if (c.processed) this.processed.set(`${c.processed.groupId}:${c.processed.digest}`, c.processed.at);
    if (c.envelope) this.envelopes.set(c.envelope.digest, c.envelope.expiresAt);
    if (c.welcome) this.welcomes.set(c.welcome.digest, c.welcome.at);
    if (c.consumedKeyPackage) {
      const kp = this.keyPackages.get(c.consumedKeyPackage.ref);
      if (kp && kp.consumedAt === undefined) kp.consumedAt = c.consumedKeyPackage.at;
    }
  }

  /** The unique index on conversations.topic_id of the database stores, checked before anything changes. */
  private checkTopicsUnique(c: InboundCommit): void {
    if (!c.groups?.length) return;
    const after = new Map(this.groups.map((g) => [g.groupId, g]));
    for (const g of c.deleteGroups ?? []) after.delete(g);
    for (const g of c.groups) after.set(g.groupId, g);
    const seen = new Set<string>();
    for (const g of after.values()) {
      if (seen.has(g.topicId)) throw new StorageError(`two groups share the topic id ${g.topicId}`);
      seen.add(g.topicId);
    }
  }
}
