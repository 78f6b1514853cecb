/**
 * The public shapes of N-way groups (PROTOCOL.md §9).
 */
import type { UnixSeconds, UserIdHex } from './brand.js';
import type { AppContent, ContentInput } from './content.js';
import type { PeerRecord } from './store.js';

/**
 * Group policy of a RelayClient (its `groups` option): who may invite us, size limits, and the committer's
 * batching delay.
 */
export interface GroupOptions {
  /** User ids allowed to invite us; undefined lets anyone (within the Welcome quotas). */
  allowInvitesFrom?: readonly string[];
  /** Largest group accepted from a Welcome, and created or grown by us. Default 250. */
  maxMembers?: number;
  /** Largest ratchet tree (in nodes, blanks included) accepted from a Welcome. Default 2047. */
  maxTreeNodes?: number;
  /** How long the committer batches proposals before committing; at most 2000 (§9). Default 200. */
  commitDelayMs?: number;
}

/** One member of a group: its user id and leaf. */
export interface GroupMemberInfo {
  userId: UserIdHex;
  leafIndex: number;
}

/** A group as we see it: its id, topic, name, members and committer. */
export interface GroupInfo {
  groupId: string;
  topicId: string;
  name?: string;
  epoch: bigint;
  members: GroupMemberInfo[];
  committer: UserIdHex;
  isCommitter: boolean;
}

/** A membership event of a group we are in: created, joined, members, rejoined or left. */
export type GroupEvent =
  | { kind: 'created'; groupId: string; topicId: string; members: UserIdHex[] }
  | { kind: 'joined'; groupId: string; topicId: string; invitedBy: UserIdHex; members: UserIdHex[] }
  | { kind: 'members'; groupId: string; added: UserIdHex[]; removed: UserIdHex[]; epoch: bigint }
  | { kind: 'rejoined'; groupId: string; topicId: string; epoch: bigint }
  | { kind: 'left'; groupId: string; topicId: string; reason: 'removed' | 'left' };

/**
 * The conversation of a group message; `id` and `groupId` are both the group id in hex, so code keyed on
 * `conversation.id` works for both kinds.
 */
export interface GroupConversation {
  kind: 'group';
  /** The group id (hex). */
  id: string;
  groupId: string;
  topicId: string;
  name?: string;
}

/** A verified application message from a group we are a member of; `from` is the sending member. */
export interface GroupReceivedMessage {
  from: UserIdHex;
  conversation: GroupConversation;
  content: AppContent;
  receivedAt: UnixSeconds;
}

export interface FetchedPeerBundle {
  record: PeerRecord;
  keyPackage: Uint8Array;
  powBits: number;
}

/**
 * A reply a handler asks for: any §8 content (ContentInput). It gets a fresh id unless it has one
 * (a stream's parts share theirs) and reply_to the answered message unless it sets its own.
 */
export type Reply = ContentInput;
export type HandlerData = Array<{ conversationId: string; json: string }>;

/**
 * A membership change a message handler asks for. It is committed with the message (as intents in
 * the group's bookkeeping) and carried out afterwards, again after a restart until it holds, so a
 * crash neither loses it nor applies it twice.
 */
export type GroupChange =
  | { kind: 'add'; userIds: readonly string[] }
  | { kind: 'remove'; userIds: readonly string[] }
  | { kind: 'leave' };

/** Per-conversation data and group changes, read and written inside the message's transaction. */
export interface HandlerTransaction {
  /** The JSON committed for that conversation, if any. */
  loadData(conversationId: string): Promise<string | undefined>;
  /** Written in the same commit as the message and its replies. */
  saveData(conversationId: string, json: string): void;
  /** Recorded in the same commit; carried out once it is durable. */
  groupChange?(groupId: string, change: GroupChange): void;
}
