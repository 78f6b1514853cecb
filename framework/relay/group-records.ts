/**
 * A group's stored record, its decoded MLS state and its bookkeeping, read and written with the
 * store's compare-and-swap versions. Decoded states are cached by version, so a group's next
 * message skips decoding unless another process (or a failed commit) moved the record on.
 */
import type { UnixSeconds } from './brand.js';
import type { Clock } from './clock.js';
import { ArgumentError } from './errors.js';
import { parseGroupMeta, serializeGroupMeta, type GroupMeta } from './group-meta.js';
import type { ConversationStates } from './conversation-states.js';
import * as mls from './mls/index.js';
import type { GroupConversationRecord, GroupRecord, InboundCommit, RelayStore } from './store.js';

export interface Loaded {
  record: GroupRecord;
  state: mls.GroupSession;
  meta: GroupMeta;
}

/** A group record's state columns for `state`: both parts of mls.encodeGroupSession. */
export type GroupStateColumns = Pick<GroupRecord, 'state' | 'epochState' | 'epochStateUnchanged'>;

/**
 * The state columns to write for `state`. With the record it was made from and that record's
 * decoded state (`previous`), an unchanged epoch part is neither encoded nor written again.
 */
export function groupStateColumns(
  state: mls.GroupSession,
  from?: { record: GroupRecord; previous: mls.GroupSession },
): GroupStateColumns {
  const epoch = from?.record.epochState;
  const basis = epoch && { session: from.previous, stored: { live: from.record.state, epoch } };
  const encoded = mls.encodeGroupSession(state, basis);
  return { state: encoded.live, epochState: encoded.epoch, epochStateUnchanged: !encoded.epochChanged };
}

/**
 * The record to write for a new state and bookkeeping; its version is still the one read.
 * `previous`: the decoded state of `record` as read, when the caller has it (see groupStateColumns).
 */
export function updatedRecord(
  record: GroupRecord,
  state: mls.GroupSession,
  meta: GroupMeta,
  now: number,
  previous?: mls.GroupSession,
): GroupConversationRecord {
  return {
    ...record,
    kind: 'group',
    ...groupStateColumns(state, previous && { record, previous }),
    epoch: mls.epochOf(state),
    meta: serializeGroupMeta(meta),
    updatedAt: now as UnixSeconds,
  };
}

export class GroupRecords {
  constructor(
    private readonly store: RelayStore,
    private readonly clock: Clock,
    /** Shared with 1:1 sessions: one versioned cache, one compare-and-set save. */
    private readonly states: ConversationStates,
  ) {}

  decoded(record: GroupRecord): mls.GroupSession {
    return this.states.decoded(record);
  }

  async load(groupId: string): Promise<Loaded | undefined> {
    const record = await this.store.getGroup(groupId);
    if (!record) return undefined;
    return { record, state: this.decoded(record), meta: parseGroupMeta(record.meta, this.clock.now()) };
  }

  /** The group and whether this message digest was processed, in one read. */
  async loadForMessage(
    groupId: string,
    digest: string,
  ): Promise<{ loaded: Loaded; processed: boolean } | undefined> {
    const found = await this.states.loadGroup(groupId, digest);
    if (!found) return undefined;
    const { group: record, processed, cached } = found;
    return {
      loaded: {
        record,
        state: cached ?? this.states.decodeMissed(record),
        meta: parseGroupMeta(record.meta, this.clock.now()),
      },
      processed,
    };
  }

  async require(groupId: string): Promise<Loaded> {
    const loaded = await this.load(groupId);
    if (!loaded)
      throw new ArgumentError(`not a member of group ${groupId}; see groups() for the ones we are in`);
    return loaded;
  }

  forget(groupId: string): void {
    this.states.forget(groupId);
  }

  /** Commits, then moves each written record to the version the store now holds. */
  save(changes: InboundCommit, decoded?: mls.GroupSession): Promise<void> {
    const only = changes.conversations?.length === 1 ? changes.conversations[0] : undefined;
    return this.states.save(changes, decoded && only && { groupId: only.groupId, state: decoded });
  }
}
