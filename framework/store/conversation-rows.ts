/**
 * Rows of the `conversations` table ↔ SessionRecord (kind 'direct') and GroupRecord (kind 'group').
 * Both kinds write every column, the other kind's as NULL, so one compare-and-set statement serves
 * both (typeorm-store.ts).
 */
import type { GroupIdHex } from '../relay/brand.js';
import { StorageError } from '../relay/errors.js';
import type {
  ConversationRecord,
  GroupRecord,
  GroupSummaryRecord,
  SessionAccessRecord,
  SessionRecord,
} from '../relay/store.js';
import type { AtRestCipher } from './crypto-at-rest.js';
import {
  defined,
  epochParam,
  nullable,
  optSeconds,
  toBigInt,
  toBool,
  toBytes,
  toInt,
  toParam,
  toSeconds,
  type Row,
} from './mapping.js';

export type ConversationKind = 'direct' | 'group';

/**
 * A row's group id, branded where it enters the relay layer. Not checked: every writer brands its
 * ids, and rows written before the brand existed are read as they are (a store never refuses its
 * own rows).
 */
export const storedGroupId = (r: Row): GroupIdHex => String(r.group_id) as GroupIdHex;

/** Every conversations column except group_id and version, in the order the params list them. */
export const CONVERSATION_COLUMNS = [
  'kind',
  'state',
  'epoch',
  'updated_at',
  'at_rest',
  'peer_id',
  'initiated_unconfirmed',
  'inbound_access_current',
  'inbound_access_previous',
  'messages_since_commit',
  'unconfirmed_outgoing',
  'unused_since',
  'topic_id',
  'meta',
  // Last, so the UPDATE that keeps a group's stored epoch part is the same list without it.
  'epoch_state',
] as const;

/** CONVERSATION_COLUMNS without epoch_state: what a write that keeps the stored epoch part sets. */
export const COLUMNS_KEEPING_EPOCH_STATE = CONVERSATION_COLUMNS.slice(0, -1);

/**
 * The slot "table" a kind's secrets are sealed under. Still the names of the tables they were
 * sealed in before the one conversations table (the migration moves ciphertexts unopened), and
 * different per kind, so a 1:1 row's sealed value cannot be replayed into a group row.
 */
export const SLOT_TABLE: Record<ConversationKind, 'sessions' | 'groups'> = {
  direct: 'sessions',
  group: 'groups',
};

const stateSlot = (kind: ConversationKind, groupId: string) => ({
  table: SLOT_TABLE[kind],
  column: 'state',
  key: groupId,
});

const sealState = (c: AtRestCipher, kind: ConversationKind, r: { groupId: string; state: Uint8Array }) =>
  toParam(c.seal(r.state, stateSlot(kind, r.groupId)));

/** What a record's state is when the load skipped it (ConversationMessageLoad.stateSkipped). */
const SKIPPED_STATE = new Uint8Array(0);

/** `skipped`: the load did not read the state columns (the caller holds them), so none is opened. */
const openState = (c: AtRestCipher, kind: ConversationKind, r: Row, skipped = false): Uint8Array =>
  skipped ? SKIPPED_STATE : c.open(toBytes(r.state), toInt(r.at_rest), stateSlot(kind, String(r.group_id)));

/** A session column other than state, sealed under the session's group id (sealed-columns.ts). */
const sessionSlot = (column: string, groupId: string) => ({ table: SLOT_TABLE.direct, column, key: groupId });

export function sessionParams(s: SessionRecord, c: AtRestCipher): unknown[] {
  const { previous } = s.inboundAccess;
  const sealAccess = (column: string, b: Uint8Array) => toParam(c.seal(b, sessionSlot(column, s.groupId)));
  return [
    'direct',
    sealState(c, 'direct', s),
    epochParam(s.epoch),
    s.updatedAt,
    c.flag,
    s.peerId,
    s.initiatedUnconfirmed,
    sealAccess('inbound_access_current', s.inboundAccess.current),
    previous ? sealAccess('inbound_access_previous', previous) : null,
    s.messagesSinceCommit,
    c.sealText(JSON.stringify(s.unconfirmedOutgoing), sessionSlot('unconfirmed_outgoing', s.groupId)),
    nullable(s.unusedSince),
    null,
    null,
    null,
  ];
}

function parseOutgoing(v: unknown): string[] {
  const parsed: unknown = JSON.parse(String(v));
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string'))
    throw new StorageError('conversations.unconfirmed_outgoing is not a JSON array of strings');
  return parsed;
}

/** The inbound access keys are sealed per column and row: a database reader must not skip PoW with them. */
function rowToInboundAccess(r: Row, c: AtRestCipher): SessionRecord['inboundAccess'] {
  const groupId = String(r.group_id);
  const flag = toInt(r.at_rest);
  const openAccess = (column: string, v: unknown) => c.open(toBytes(v), flag, sessionSlot(column, groupId));
  const previous = r.inbound_access_previous;
  return defined({
    current: openAccess('inbound_access_current', r.inbound_access_current),
    previous:
      previous === null || previous === undefined
        ? undefined
        : openAccess('inbound_access_previous', previous),
  });
}

export function rowToSession(r: Row, c: AtRestCipher, stateSkipped = false): SessionRecord {
  const groupId = storedGroupId(r);
  const flag = toInt(r.at_rest);
  const unusedSince = optSeconds(r.unused_since);
  const outgoing = c.openText(
    String(r.unconfirmed_outgoing),
    flag,
    sessionSlot('unconfirmed_outgoing', groupId),
  );
  return {
    groupId,
    peerId: String(r.peer_id),
    state: openState(c, 'direct', r, stateSkipped),
    epoch: toBigInt(r.epoch),
    initiatedUnconfirmed: toBool(r.initiated_unconfirmed),
    inboundAccess: rowToInboundAccess(r, c),
    messagesSinceCommit: toInt(r.messages_since_commit),
    unconfirmedOutgoing: parseOutgoing(outgoing),
    updatedAt: toSeconds(r.updated_at),
    ...(unusedSince !== undefined ? { unusedSince } : {}),
    version: toInt(r.version),
  };
}

/** The columns listSessionAccess reads: no MLS state. */
export const SESSION_ACCESS_COLUMNS = [
  'group_id',
  'inbound_access_current',
  'inbound_access_previous',
  'at_rest',
] as const;

export const rowToSessionAccess = (r: Row, c: AtRestCipher): SessionAccessRecord => ({
  groupId: storedGroupId(r),
  inboundAccess: rowToInboundAccess(r, c),
});

/** Group meta (name, members, committer) is the group's plaintext: sealed like its state. */
const metaSlot = (groupId: string) => ({ table: SLOT_TABLE.group, column: 'meta', key: groupId });

/** A group's epoch part holds its tree and key schedule secrets: sealed like its state. */
const epochStateSlot = (groupId: string) => ({
  table: SLOT_TABLE.group,
  column: 'epoch_state',
  key: groupId,
});

/**
 * CONVERSATION_COLUMNS' values for a group. With epochStateUnchanged the list ends before
 * epoch_state (COLUMNS_KEEPING_EPOCH_STATE): the stored epoch part is neither sealed nor sent again.
 */
export function groupParams(g: GroupRecord, c: AtRestCipher): unknown[] {
  const meta = c.sealText(g.meta, metaSlot(g.groupId));
  const direct = [null, null, null, null, null, null, null];
  return [
    'group',
    sealState(c, 'group', g),
    epochParam(g.epoch),
    g.updatedAt,
    c.flag,
    ...direct,
    g.topicId,
    meta,
    ...(g.epochStateUnchanged
      ? []
      : [g.epochState ? toParam(c.seal(g.epochState, epochStateSlot(g.groupId))) : null]),
  ];
}

export function rowToGroup(r: Row, c: AtRestCipher, stateSkipped = false): GroupRecord {
  const groupId = storedGroupId(r);
  return {
    groupId,
    topicId: String(r.topic_id),
    state: openState(c, 'group', r, stateSkipped),
    ...(stateSkipped || r.epoch_state === null || r.epoch_state === undefined
      ? {}
      : { epochState: c.open(toBytes(r.epoch_state), toInt(r.at_rest), epochStateSlot(groupId)) }),
    epoch: toBigInt(r.epoch),
    meta: c.openText(String(r.meta), toInt(r.at_rest), metaSlot(groupId)),
    updatedAt: toSeconds(r.updated_at),
    version: toInt(r.version),
  };
}

/**
 * A row of either kind; an unknown kind is a corrupt row, not a conversation. `stateSkipped`: the
 * row's state columns were not read (a message load at the held version): state is empty, no
 * epochState.
 */
export function rowToConversation(r: Row, c: AtRestCipher, stateSkipped = false): ConversationRecord {
  if (r.kind === 'direct') return { kind: 'direct', ...rowToSession(r, c, stateSkipped) };
  if (r.kind === 'group') return { kind: 'group', ...rowToGroup(r, c, stateSkipped) };
  throw new StorageError(`conversation ${String(r.group_id)} has an unknown kind ${String(r.kind)}`);
}

/** The columns listGroupSummaries reads: no MLS state. */
export const GROUP_SUMMARY_COLUMNS = ['group_id', 'topic_id', 'meta', 'at_rest'] as const;

export const rowToGroupSummary = (r: Row, c: AtRestCipher): GroupSummaryRecord => {
  const groupId = storedGroupId(r);
  return {
    groupId,
    topicId: String(r.topic_id),
    meta: c.openText(String(r.meta), toInt(r.at_rest), metaSlot(groupId)),
  };
};
