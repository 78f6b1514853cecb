/**
 * In-memory RelayStore for tests and throwaway clients: one map of conversations of both kinds,
 * like the database stores' one `conversations` table.
 */
import type { UnixSeconds } from './brand.js';
import { StaleStateError, StorageError } from './errors.js';
import {
  CONVERSATION_DATA_DELETED,
  type ConversationMessageLoad,
  type EnvelopeLookup,
  type ConversationRecord,
  type DirectConversationRecord,
  type GroupConversationRecord,
  type GroupMessageLoad,
  type GroupRecord,
  type InboundCommit,
  MESSAGE_SENDER_SECONDS,
  MESSAGE_SENDERS_PER_CONVERSATION,
  type MessageSenderRecord,
  type MessageLoad,
  type OutboxRecord,
  type OwnBundle,
  type ParkedInboundRecord,
  type PeerRecord,
  type RelayStore,
  type SessionRecord,
  type StoredIdentity,
  type StoredKeyPackage,
  directMessageLoad,
  groupMessageLoad,
} from './store.js';

const copySession = (s: SessionRecord): SessionRecord => ({
  ...s,
  state: s.state.slice(),
  inboundAccess: { ...s.inboundAccess },
  unconfirmedOutgoing: [...s.unconfirmedOutgoing],
});

const copyParked = (p: ParkedInboundRecord): ParkedInboundRecord => ({ ...p, payload: p.payload.slice() });

const copyGroup = ({ epochStateUnchanged: _unchanged, ...g }: GroupRecord): GroupRecord => ({
  ...g,
  state: g.state.slice(),
  ...(g.epochState ? { epochState: g.epochState.slice() } : {}),
});

/** A stored conversation's copy without its kind tag: what the per-kind reads return. */
const sessionOf = ({ kind: _kind, ...s }: DirectConversationRecord): SessionRecord => copySession(s);
const groupOf = ({ kind: _kind, ...g }: GroupConversationRecord): GroupRecord => copyGroup(g);

const copyConversation = (c: ConversationRecord): ConversationRecord =>
  c.kind === 'direct' ? { kind: 'direct', ...sessionOf(c) } : { kind: 'group', ...groupOf(c) };

/** A load's copy when its state was skipped (stateSkipped): what the database stores return then. */
const NO_STATE = new Uint8Array(0);
function withoutState(c: ConversationRecord): ConversationRecord {
  if (c.kind === 'direct') return copyConversation({ ...c, state: NO_STATE });
  const { epochState: _epoch, ...g } = c;
  return copyConversation({ ...g, state: NO_STATE });
}

// Normalised the way a database column with default false reads back, so both stores agree.
const copyOutbox = ({ awaitAck, ...o }: OutboxRecord): OutboxRecord => ({
  ...o,
  payload: o.payload.slice(),
  ...(awaitAck ? { awaitAck: true } : {}),
});

const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The compare-and-set rule of commit(), one check for both kinds: a record's version must be the
 * stored one (0: none stored), and a group id keeps its kind.
 */
function checkVersions(stored: ReadonlyMap<string, ConversationRecord>, c: InboundCommit): void {
  for (const r of c.conversations ?? []) {
    const found = stored.get(r.groupId);
    const version = found?.version ?? 0;
    if (version !== r.version) throw new StaleStateError(r.groupId, r.version, version);
    if (found && found.kind !== r.kind)
      throw new StorageError(`conversation ${r.groupId} is stored as kind ${found.kind}`);
    const replaced = c.deleteConversations?.includes(r.groupId) ?? false;
    if (
      r.kind === 'group' &&
      r.epochStateUnchanged &&
      (replaced || found?.kind !== 'group' || !found.epochState)
    )
      throw new StorageError(`group ${r.groupId}: epochStateUnchanged, but no epoch state is stored`);
  }
}

/**
 * The row to store for a written record: a group's epoch part is the stored one when the record
 * says it did not change (the database stores do not write it then either).
 */
function storedRow(r: ConversationRecord, found: ConversationRecord | undefined): ConversationRecord {
  if (r.kind !== 'group') return { ...copyConversation(r), version: r.version + 1 };
  const kept = r.epochStateUnchanged && found?.kind === 'group' ? found.epochState : undefined;
  const written = groupOf(kept ? { ...r, epochState: undefined } : r);
  const row: GroupConversationRecord = { kind: 'group', ...written, version: r.version + 1 };
  return kept ? { ...row, epochState: kept } : row;
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
  /** One entry per group id, of either kind: the picture of the database stores' `conversations` table. */
  private readonly conversations = new Map<string, ConversationRecord>();
  private readonly processed = new Map<string, UnixSeconds>();
  /** The sender index: per group id, message id → sender and when, oldest first (insertion order). */
  private readonly senders = new Map<string, Map<string, { sender: string; at: UnixSeconds }>>();
  private readonly envelopes = new Map<string, UnixSeconds>();
  private readonly welcomes = new Map<string, UnixSeconds>();
  private readonly outbox: OutboxRecord[] = [];
  private readonly quarantined: Array<OutboxRecord & { quarantinedAt: UnixSeconds }> = [];
  private readonly parked: ParkedInboundRecord[] = [];
  private readonly conversationData = new Map<string, string>();

  /** Copies of the stored sessions, kind tag removed. */
  private get sessions(): SessionRecord[] {
    return [...this.conversations.values()].flatMap((c) => (c.kind === 'direct' ? [sessionOf(c)] : []));
  }

  /** Copies of the stored groups, kind tag removed. */
  private get groups(): GroupRecord[] {
    return [...this.conversations.values()].flatMap((c) => (c.kind === 'group' ? [groupOf(c)] : []));
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
    const c = this.conversations.get(groupId);
    return c?.kind === 'direct' ? sessionOf(c) : undefined;
  }
  async getSessionByPeer(peerId: string) {
    return this.sessions.find((s) => s.peerId === peerId);
  }
  async listSessions() {
    return this.sessions;
  }
  async listSessionAccess() {
    return this.sessions
      .sort((a, b) => compareStrings(a.groupId, b.groupId))
      .map((s) => ({ groupId: s.groupId, inboundAccess: s.inboundAccess }));
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
    const c = this.conversations.get(groupId);
    return c?.kind === 'group' ? groupOf(c) : undefined;
  }
  async getGroupByTopic(topicId: string) {
    return this.groups.find((g) => g.topicId === topicId);
  }
  async listGroups() {
    return this.groups.sort((a, b) => compareStrings(a.groupId, b.groupId));
  }
  async listGroupSummaries() {
    return this.groups
      .sort((a, b) => compareStrings(a.groupId, b.groupId))
      .map(({ groupId, topicId, meta }) => ({ groupId, topicId, meta }));
  }
  async hasProcessed(groupId: string, digest: string) {
    return this.processed.has(`${groupId}:${digest}`);
  }
  async getConversation(groupId: string): Promise<ConversationRecord | undefined> {
    const c = this.conversations.get(groupId);
    return c && copyConversation(c);
  }
  /** At `heldVersion` the state is neither copied nor returned (RelayStore.loadConversationForMessage). */
  async loadConversationForMessage(
    groupId: string,
    digest: string,
    envelope?: EnvelopeLookup,
    heldVersion?: number,
  ): Promise<ConversationMessageLoad | undefined> {
    const stored = this.conversations.get(groupId);
    if (!stored) return undefined;
    const skipped = stored.version === heldVersion;
    const conversation = skipped ? withoutState(stored) : copyConversation(stored);
    const processed = await this.hasProcessed(groupId, digest);
    const peer = conversation.kind === 'direct' ? await this.getPeer(conversation.peerId) : undefined;
    const seen = envelope && (await this.hasEnvelope(envelope.digest, envelope.now));
    return {
      conversation,
      processed,
      ...(peer ? { peer } : {}),
      ...(seen === undefined ? {} : { envelopeSeen: seen }),
      ...(skipped ? { stateSkipped: true as const } : {}),
    };
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
  async hasEnvelope(digest: string, now: UnixSeconds) {
    const exp = this.envelopes.get(digest);
    return exp !== undefined && exp >= now;
  }
  async hasWelcome(digest: string, since: UnixSeconds) {
    const at = this.welcomes.get(digest);
    return at !== undefined && at >= since;
  }
  async messageSenders(groupId: string, messageIds: readonly string[]) {
    const index = this.senders.get(groupId);
    const out = new Map<string, string>();
    for (const id of messageIds) {
      const found = index?.get(id);
      if (found) out.set(id, found.sender);
    }
    return out;
  }
  async prune(now: UnixSeconds) {
    for (const [d, exp] of this.envelopes) if (exp < now) this.envelopes.delete(d);
    const before = now - MESSAGE_SENDER_SECONDS;
    for (const [groupId, index] of this.senders) {
      for (const [id, e] of index) if (e.at < before) index.delete(id);
      if (index.size === 0) this.senders.delete(groupId);
    }
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
        senders: [...this.senders.entries()].map(([g, index]) => [g, [...index.entries()]]).sort(),
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

  async listOutbox(limit = 1000, replica?: string) {
    const mine = (o: OutboxRecord) =>
      replica === undefined || o.replica === undefined || o.replica === replica;
    return this.outbox.filter(mine).slice(0, limit).map(copyOutbox);
  }
  async listOutboxOwners() {
    const owners = new Set(this.outbox.flatMap((o) => (o.replica === undefined ? [] : [o.replica])));
    return [...owners].sort(compareStrings);
  }
  async claimOutbox(from: string, to: string) {
    let moved = 0;
    if (from === to) return moved;
    for (const o of this.outbox)
      if (o.replica === from) {
        o.replica = to;
        moved++;
      }
    return moved;
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
    for (const g of c.deleteConversations ?? []) {
      this.conversations.delete(g);
      this.senders.delete(g);
    }
    for (const r of c.conversations ?? [])
      this.conversations.set(r.groupId, storedRow(r, this.conversations.get(r.groupId)));
    for (const o of c.outbox ?? []) this.outbox.push(copyOutbox(o));
    for (const d of c.conversationData ?? []) {
      if (d.json === CONVERSATION_DATA_DELETED) this.conversationData.delete(d.conversationId);
      else this.conversationData.set(d.conversationId, d.json);
    }
    for (const p of c.peers ?? []) this.peers.set(p.userId, { ...p });
    if (c.processed) this.processed.set(`${c.processed.groupId}:${c.processed.digest}`, c.processed.at);
    this.indexSenders(c.messageSenders ?? []);
    if (c.envelope) this.envelopes.set(c.envelope.digest, c.envelope.expiresAt);
    if (c.welcome) this.welcomes.set(c.welcome.digest, c.welcome.at);
    if (c.consumedKeyPackage) {
      const kp = this.keyPackages.get(c.consumedKeyPackage.ref);
      if (kp && kp.consumedAt === undefined) kp.consumedAt = c.consumedKeyPackage.at;
    }
  }

  /** First entry per id wins; then each touched conversation keeps its newest entries only. */
  private indexSenders(records: readonly MessageSenderRecord[]): void {
    for (const r of records) {
      let index = this.senders.get(r.groupId);
      if (!index) this.senders.set(r.groupId, (index = new Map()));
      if (!index.has(r.messageId)) index.set(r.messageId, { sender: r.sender, at: r.at });
      for (const id of index.keys()) {
        if (index.size <= MESSAGE_SENDERS_PER_CONVERSATION) break;
        index.delete(id);
      }
    }
  }

  /** The unique index on conversations.topic_id of the database stores, checked before anything changes. */
  private checkTopicsUnique(c: InboundCommit): void {
    if (!c.conversations?.some((r) => r.kind === 'group')) return;
    const after = new Map(this.conversations);
    for (const g of c.deleteConversations ?? []) after.delete(g);
    for (const r of c.conversations) after.set(r.groupId, r);
    const seen = new Set<string>();
    for (const g of after.values()) {
      if (g.kind !== 'group') continue;
      if (seen.has(g.topicId)) throw new StorageError(`two groups share the topic id ${g.topicId}`);
      seen.add(g.topicId);
    }
  }
}
