/**
 * The relay layer's bookkeeping for one group (PROTOCOL.md §9), stored as JSON beside the MLS
 * state so that key-refresh counters, unfinished membership changes and rejoin rate limits survive
 * a restart. The store treats it as opaque text.
 */
import type { UserIdHex } from './brand.js';
import type { RejoinRequest } from './rejoin-request.js';

/** A membership change we asked for; re-proposed after any commit that did not make it. */
export type GroupIntent = (
  { kind: 'add'; userId: UserIdHex } | { kind: 'remove'; userId: UserIdHex } | { kind: 'leave' }
) & { attempts?: number };

export interface GroupMeta {
  name?: string;
  /** Application messages sent or seen since the last commit (committer key refresh). */
  messagesSinceCommit: number;
  /** Our own application messages since our last Update proposal or commit. */
  ownMessagesSinceUpdate: number;
  lastCommitAt: number;
  /** When we last refreshed our leaf (proposed an Update, or committed). */
  lastUpdateAt: number;
  intents: GroupIntent[];
  /** The commit that began this epoch added members (who may have missed earlier proposals). */
  epochAddedMembers?: boolean;
  /** When a proposal was first seen waiting for a commit in the current epoch. */
  pendingSince?: number;
  /** When we last asked the committer to re-add us (at most once per 10 minutes). */
  rejoinRequestedAt?: number;
  /** Our outstanding GROUP_REJOIN: the only Welcome for this group we accept answers it (§9). */
  rejoinRequest?: RejoinRequest;
  /**
   * When a commit removed us while our rejoin request was open: the committer's Remove + Add.
   * The state is kept until the group Welcome replaces it (or, once the request lapsed, deleted).
   */
  readdPendingSince?: number;
  /** Committer: invitees a commit left out for its 10-Add limit, added in the next epoch (§9). */
  deferredAdds?: UserIdHex[];
  /** Committer: when each member's last rejoin was served (one per member per 10 minutes). */
  rejoinsServed: Record<string, number>;
  invitedBy?: UserIdHex;
}

export function newGroupMeta(now: number, extra: Partial<GroupMeta> = {}): GroupMeta {
  return {
    messagesSinceCommit: 0,
    ownMessagesSinceUpdate: 0,
    lastCommitAt: now,
    lastUpdateAt: now,
    intents: [],
    rejoinsServed: {},
    ...extra,
  };
}

/** Tolerates fields written by older versions being absent; the JSON was written by us. */
export function parseGroupMeta(json: string, now: number): GroupMeta {
  const parsed = JSON.parse(json) as Partial<GroupMeta>;
  return { ...newGroupMeta(now), ...parsed };
}

export function serializeGroupMeta(meta: GroupMeta): string {
  return JSON.stringify(meta);
}
