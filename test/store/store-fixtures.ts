/**
 * Fixtures and the shared context of the RelayStore suite (store-suite.ts and its store-suite-*.ts
 * parts): records shaped like the real ones, built from a tag so tests stay short.
 */
import {
  asGroupIdHex,
  asUnixSeconds,
  type GroupIdHex,
  type UnixSeconds,
} from '../../framework/relay/brand.js';
import type {
  DirectConversationRecord,
  GroupConversationRecord,
  GroupRecord,
  InboundCommit,
  OutboxRecord,
  PeerRecord,
  RelayStore,
  SessionRecord,
  StoredKeyPackage,
} from '../../framework/relay/store.js';

export type MakeStore = () => Promise<{ store: RelayStore; cleanup(): Promise<void> }>;

/**
 * What each part of the suite gets from describeRelayStore: the store of the running test (a fresh
 * one per test, so read it inside the test, not when the describe block is built) and the two
 * one-conversation commits most tests start with.
 */
export interface StoreSuiteContext {
  readonly store: RelayStore;
  commitSession(s: SessionRecord, extra?: InboundCommit): Promise<void>;
  commitGroup(g: GroupRecord, extra?: InboundCommit): Promise<void>;
}

const T0 = 1_700_000_000;
export const at = (offset = 0): UnixSeconds => asUnixSeconds(T0 + offset);
export const DAY = 86400;

export const bytes = (length: number, seed = 1): Uint8Array =>
  Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
export const allByteValues = () => Uint8Array.from({ length: 256 }, (_, i) => i);

/** A session whose group id is groupId(tag). */
export function session(tag: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return {
    groupId: groupId(tag),
    peerId: `peer-${tag}`,
    state: bytes(200, tag.length),
    epoch: 3n,
    initiatedUnconfirmed: false,
    inboundAccess: { current: bytes(32, 7) },
    messagesSinceCommit: 0,
    unconfirmedOutgoing: [],
    updatedAt: at(),
    version: 0,
    ...over,
  };
}

/**
 * Ids shaped like the real ones: 64 hex chars for the group, 32 for its topic. The tag is hex-encoded
 * first, so distinct tags never pad to the same id ('r1' and 'r10' would).
 */
const hexTag = (tag: string) => Buffer.from(tag).toString('hex');
export const groupId = (tag: string): GroupIdHex => asGroupIdHex(hexTag(tag).padEnd(64, '0'));
export const topicId = (tag: string) => hexTag(tag).padEnd(32, 'f');

export function group(tag: string, over: Partial<GroupRecord> = {}): GroupRecord {
  return {
    groupId: groupId(tag),
    topicId: topicId(tag),
    state: bytes(300, tag.length + 11),
    epoch: 5n,
    meta: JSON.stringify({ name: `group ${tag}`, committer: 'ab'.repeat(32) }),
    updatedAt: at(),
    version: 0,
    ...over,
  };
}

/** The session as the conversation record a commit writes. */
export const direct = (s: SessionRecord): DirectConversationRecord => ({ kind: 'direct', ...s });
/** The group as the conversation record a commit writes. */
export const grouped = (g: GroupRecord): GroupConversationRecord => ({ kind: 'group', ...g });

export const peer = (userId: string, over: Partial<PeerRecord> = {}): PeerRecord => ({
  userId,
  identityKey: bytes(32, 3),
  sealKey: bytes(32, 4),
  powBits: 18,
  ...over,
});

export const keyPackage = (ref: string, over: Partial<StoredKeyPackage> = {}): StoredKeyPackage => ({
  ref,
  keyPackage: bytes(300, 5),
  privateKeyPackage: bytes(120, 6),
  createdAt: at(),
  notAfter: at(90 * DAY),
  ...over,
});

export const outbox = (id: string, over: Partial<OutboxRecord> = {}): OutboxRecord => ({
  id,
  topic: `relay/v1/inbox/${id}`,
  payload: bytes(64, id.length),
  createdAt: at(),
  ...over,
});

export const ids = (rows: OutboxRecord[]) => rows.map((o) => o.id);

export const isPlainBytes = (b: Uint8Array) => b instanceof Uint8Array && !Buffer.isBuffer(b);

/** Everything observable through the interface about the fixture keys the atomicity tests touch. */
export async function snapshot(store: RelayStore) {
  return {
    sessions: await store.listSessions(),
    groups: await store.listGroups(),
    outbox: await store.listOutbox(),
    peer: await store.getPeer('p-new'),
    processed: await store.hasProcessed(groupId('g1'), 'd1'),
    envelope: await store.hasEnvelope('e1', at()),
    welcome: await store.hasWelcome('w1', at()),
    keyPackages: await store.listKeyPackages(),
    conversation: await store.getConversationData('c1'),
  };
}
