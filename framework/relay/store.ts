/**
 * What the relay layer needs from durable storage. framework/store implements it on TypeORM;
 * MemoryRelayStore below implements it for tests and throwaway clients.
 *
 * Every change caused by one inbound message goes through a single `commit()` call so that a
 * durable implementation can make it one transaction: state, dedupe record and replay-cache entry
 * land together or not at all.
 */
import type { GroupIdHex, UnixSeconds } from './brand.js';

/** Writing this JSON for a conversation deletes its data. */
export const CONVERSATION_DATA_DELETED = 'null';

/**
 * Our identity's two 32-byte secrets as persisted (identityFromSecrets rebuilds the rest) and when it was
 * created. Secret.
 */
export interface StoredIdentity {
  signingSeed: Uint8Array;
  sealSecret: Uint8Array;
  createdAt: UnixSeconds;
}

/**
 * One of our KeyPackages with its private part; deleted some time after a Welcome consumed it (600 s) or a
 * newer bundle superseded it (7 days), so late Welcomes still open.
 */
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

/**
 * The key bundle we last published: its exact signed bytes (republished as is), issued_at, and the ref of the
 * KeyPackage it carries.
 */
export interface OwnBundle {
  bytes: Uint8Array;
  issuedAt: UnixSeconds;
  keyPackageRef: string;
}

/**
 * What we accepted from a peer's verified key bundle: its keys, the PoW it demands, and the issued_at that
 * later bundles must not go below.
 */
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
  /** The MLS group id, in hex. */
  groupId: GroupIdHex;
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
  /**
   * Messages sent while unconfirmed, re-sent if this group loses a simultaneous-initiation race:
   * each the UTF-8 JSON text of its §8 content (encodeContent), so the type and id survive. Opaque
   * to the store; rows written before types were kept hold plain texts (outgoing-content.ts).
   */
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
  /** The MLS group id, in hex. */
  groupId: GroupIdHex;
  /** Hex topic id, 32 chars (topicIdFromGroupId); unique, as it is derived from the group id. */
  topicId: string;
  /**
   * The live part of mls.encodeGroupSession (what every message changes); for rows stored before
   * the state was split, and so without epochState, one mls.encodeSession blob.
   */
  state: Uint8Array;
  /** The epoch part of mls.encodeGroupSession: changes only with the epoch (issue #12). */
  epochState?: Uint8Array;
  /**
   * On a record to write: epochState is the one stored at `version` already, so the store keeps
   * the stored bytes and writes none (the compare-and-set on `version` makes them the same). When
   * false or absent the store writes epochState as given, absent meaning none.
   */
  epochStateUnchanged?: boolean;
  epoch: bigint;
  /** Protocol bookkeeping owned by the relay layer, stored as JSON text (opaque to the store). */
  meta: string;
  updatedAt: UnixSeconds;
  /** Same compare-and-set rule as SessionRecord.version. */
  version: number;
}

/** What start-up needs of a session: its access keys for the hint index, not its MLS state. */
export interface SessionAccessRecord {
  groupId: GroupIdHex;
  inboundAccess: { current: Uint8Array; previous?: Uint8Array };
}

/** What start-up and housekeeping need of a group to decide whether to load its MLS state. */
export interface GroupSummaryRecord {
  groupId: GroupIdHex;
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
  /**
   * The replica that committed it (its replica id, ARCHITECTURE.md "One identity, many processes"):
   * only that replica publishes it, until it is dead and another claims it (claimOutbox). Absent
   * for a single process and for rows written before replicas: any process may publish those.
   */
  replica?: string;
}

/** Most message ids the sender index keeps per conversation; older ones fall out (PROTOCOL.md §8 checks). */
export const MESSAGE_SENDERS_PER_CONVERSATION = 1000;
/** Seconds an entry of the sender index is kept at most (7 days); prune() drops older ones. */
export const MESSAGE_SENDER_SECONDS = 7 * 86_400;

/**
 * Who sent message `messageId` in a conversation, as MLS authenticated it: what an edit, a delete or a
 * stream part is checked against (PROTOCOL.md §8). Bounded per conversation (the newest
 * MESSAGE_SENDERS_PER_CONVERSATION ids, none older than MESSAGE_SENDER_SECONDS).
 */
export interface MessageSenderRecord {
  /** The conversation's MLS group id, in hex. */
  groupId: string;
  /** The sender's §8 `id`. */
  messageId: string;
  /** Hex user id of the sender (our own for what we sent). */
  sender: string;
  at: UnixSeconds;
}

/**
 * Every store change one verified input causes, applied by RelayStore.commit as one transaction so that
 * state, dedupe and replay records land together or not at all.
 */
export interface InboundCommit {
  /**
   * Conversations of either kind to insert or replace, each under one compare-and-set rule: written
   * at version + 1 only if the stored version is still `version` (0: none stored) and a stored row
   * has the same kind.
   */
  conversations?: ConversationRecord[];
  /**
   * Conversations to delete, whatever their kind (a session replaced by a newer Welcome, a group we
   * left or were removed from); applied before `conversations`, so one commit can replace a row.
   * Their sender-index entries go with them.
   */
  deleteConversations?: GroupIdHex[];
  peers?: PeerRecord[];
  /** Dedupe record: hex group id + hex digest of the MLS message. */
  processed?: { groupId: GroupIdHex; digest: string; at: UnixSeconds };
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
  /**
   * Entries for the sender index, written with the message they name. The first entry for an id
   * wins (a later one with the same id changes nothing); each conversation then keeps only its
   * newest MESSAGE_SENDERS_PER_CONVERSATION entries.
   */
  messageSenders?: MessageSenderRecord[];
}

/** What loadForMessage() reads for an inbound application or handshake message. */
export interface MessageLoad {
  session: SessionRecord;
  /** hasProcessed(groupId, digest). */
  processed: boolean;
  /** getPeer(session.peerId). */
  peer: PeerRecord | undefined;
  /** hasEnvelope(envelope.digest, envelope.now), present when the load was given `envelope`. */
  envelopeSeen?: boolean;
  /** See ConversationMessageLoad.stateSkipped: session.state is empty then. */
  stateSkipped?: true;
}

/**
 * The replay-cache entry a load-for-message read checks on the way (hasEnvelope's arguments): the
 * inbox folds its store replay check into the conversation read, one round trip instead of two.
 */
export interface EnvelopeLookup {
  /** The envelope's replay-cache key: hex SHA-256(enc || ciphertext). */
  digest: string;
  /** Entries that expired before this time do not count. */
  now: UnixSeconds;
}

/**
 * One conversation of either kind, as the store keeps it: one row per MLS group id, a 1:1 session
 * (`direct`) or an N-way group (`group`), under one version for compare-and-set.
 */
export type ConversationRecord = DirectConversationRecord | GroupConversationRecord;

/** A 1:1 session as a conversation record: what a commit writes for one. */
export type DirectConversationRecord = { kind: 'direct' } & SessionRecord;

/** An N-way group as a conversation record: what a commit writes for one. */
export type GroupConversationRecord = { kind: 'group' } & GroupRecord;

/** What loadConversationForMessage() reads for any inbound message in a conversation. */
export interface ConversationMessageLoad {
  /** getConversation(groupId). */
  conversation: ConversationRecord;
  /** hasProcessed(groupId, digest). */
  processed: boolean;
  /** getPeer(peerId) of a direct conversation; absent for a group or an unknown peer. */
  peer?: PeerRecord;
  /** hasEnvelope(envelope.digest, envelope.now), present when the load was given `envelope`. */
  envelopeSeen?: boolean;
  /**
   * Set when the stored version is the load's `heldVersion`: the state was neither read nor opened
   * (issue #12: a group's is 100+ KB), so the record's `state` is empty and `epochState` absent; the
   * caller fills both from what it holds for that version. Absent otherwise (everything read).
   */
  stateSkipped?: true;
}

/** The 1:1 view of a load-for-message read (`loadForMessage`), the same for every store. */
export function directMessageLoad(found: ConversationMessageLoad | undefined): MessageLoad | undefined {
  if (found?.conversation.kind !== 'direct') return undefined;
  const { kind: _kind, ...session } = found.conversation;
  const seen = found.envelopeSeen;
  return {
    session,
    processed: found.processed,
    peer: found.peer,
    ...(seen === undefined ? {} : { envelopeSeen: seen }),
    ...(found.stateSkipped ? { stateSkipped: true as const } : {}),
  };
}

/** The group view of a load-for-message read (`loadGroupForMessage`), the same for every store. */
export function groupMessageLoad(found: ConversationMessageLoad | undefined): GroupMessageLoad | undefined {
  if (found?.conversation.kind !== 'group') return undefined;
  const { kind: _kind, ...group } = found.conversation;
  const skipped = found.stateSkipped ? { stateSkipped: true as const } : {};
  return { group, processed: found.processed, ...skipped };
}

/** What loadGroupForMessage() reads for a message on a group topic. */
export interface GroupMessageLoad {
  group: GroupRecord;
  /** hasProcessed(groupId, digest). */
  processed: boolean;
  /** See ConversationMessageLoad.stateSkipped: group.state is empty and epochState absent then. */
  stateSkipped?: true;
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

  /** The conversation of either kind stored under the group id. */
  getConversation(groupId: string): Promise<ConversationRecord | undefined>;

  hasProcessed(groupId: string, digest: string): Promise<boolean>;
  /**
   * getConversation(groupId), hasProcessed(groupId, digest) and, for a direct conversation,
   * getPeer(peerId) in one read; loadForMessage and loadGroupForMessage are its views per kind.
   * With `envelope`, hasEnvelope(envelope.digest, envelope.now) too, as `envelopeSeen`.
   * `heldVersion`: the version whose state the caller already holds; when the stored version is
   * that one, the state is not read (`stateSkipped`). Any other stored version reads everything.
   */
  loadConversationForMessage(
    groupId: string,
    digest: string,
    envelope?: EnvelopeLookup,
    heldVersion?: number,
  ): Promise<ConversationMessageLoad | undefined>;
  /**
   * getSession(groupId), hasProcessed(groupId, digest) and getPeer(session.peerId) in one read,
   * which is what every inbound message needs; one round trip instead of three on a database.
   * With `envelope`, hasEnvelope(envelope.digest, envelope.now) too, as `envelopeSeen` (the inbox's
   * store replay check, folded in). Undefined when there is no such session. `heldVersion` as in
   * loadConversationForMessage.
   */
  loadForMessage(
    groupId: string,
    digest: string,
    envelope?: EnvelopeLookup,
    heldVersion?: number,
  ): Promise<MessageLoad | undefined>;
  /**
   * getGroup(groupId) and hasProcessed(groupId, digest) in one read, for every message on a group
   * topic. Undefined when there is no such group. `heldVersion` as in loadConversationForMessage.
   */
  loadGroupForMessage(
    groupId: string,
    digest: string,
    heldVersion?: number,
  ): Promise<GroupMessageLoad | undefined>;
  /**
   * The senders the index knows of these message ids in one conversation (MessageSenderRecord), by
   * id; ids it does not know (never seen, or fallen out of the bound) are absent.
   */
  messageSenders(groupId: string, messageIds: readonly string[]): Promise<Map<string, string>>;
  hasEnvelope(digest: string, now: UnixSeconds): Promise<boolean>;
  hasWelcome(digest: string, since: UnixSeconds): Promise<boolean>;
  /**
   * Drop expired replay-cache entries, and Welcome and processed digests and sender-index entries
   * older than 7 days.
   */
  prune(now: UnixSeconds): Promise<void>;

  /** Stores a parked inbound message; durable when this resolves. */
  parkInbound(record: ParkedInboundRecord): Promise<void>;
  /** Parked inbound messages in the order they were parked. */
  listParkedInbound(limit?: number): Promise<ParkedInboundRecord[]>;
  deleteParkedInbound(id: string): Promise<void>;

  /**
   * Outbox rows in the order they were committed, quarantined ones left out. With `replica`, only
   * that replica's rows and rows of no replica; without, every row.
   */
  listOutbox(limit?: number, replica?: string): Promise<OutboxRecord[]>;
  /** The replicas that own unquarantined outbox rows, sorted (rows of no replica left out). */
  listOutboxOwners(): Promise<string[]>;
  /**
   * Gives every unquarantined outbox row of replica `from` to replica `to`, in one atomic
   * statement, keeping their commit order; returns how many it moved. What takes over a dead
   * replica's rows (outbox-orphans.ts).
   */
  claimOutbox(from: string, to: string): Promise<number>;
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
