/**
 * The decisions of PROTOCOL.md §9 that depend only on a group's state and bookkeeping: who may
 * commit, what a commit carries, when keys are refreshed, how a message's epoch is judged, and
 * which membership changes are still wanted. Pure functions, so they are tested on their own.
 */
import type { UserId, UserIdHex } from './brand.js';
import type { GroupIntent, GroupMeta } from './group-meta.js';
import { userIdFromHex, userIdToHex } from './identity.js';
import * as mls from './mls/index.js';

const DAY = 86_400;
/** PROTOCOL.md §9: a group holds at most 250 members (less by configuration). */
export const MAX_GROUP_MEMBERS = 250;
/** §9 "Key refresh": also after this long without one. */
export const KEY_REFRESH_SECONDS = 7 * DAY;
/**
 * Proposals the committer received this long ago and has not committed: their batch timer ran on
 * a replica that died (or stopped) before it fired, so housekeeping commits them (issue 13). Far
 * above any batch delay, so a live timer always wins.
 */
export const ORPHANED_PROPOSAL_SECONDS = 60;

/** Whether the committer's pending proposals waited long enough to be another replica's lost timer's. */
export function proposalsOrphaned(meta: GroupMeta, now: number): boolean {
  return meta.pendingSince !== undefined && now - meta.pendingSince >= ORPHANED_PROPOSAL_SECONDS;
}

/** The lowest leaf commits; the next-lowest only to commit the committer's Remove (hand-over). */
export function mayCommit(state: mls.GroupSession): boolean {
  const pending = mls.pendingProposals(state);
  if (mls.isCommitter(state)) {
    // A committer that asked to leave waits for the next-lowest member to commit its Remove.
    const own = mls.ownLeafIndex(state);
    return !pending.some((p) => p.kind === 'remove' && p.removeLeaf === own);
  }
  if (!mls.isNextCommitter(state)) return false;
  const committerLeaf = mls.committerOf(state).leafIndex;
  return pending.some((p) => p.kind === 'remove' && p.removeLeaf === committerLeaf);
}

/** §9: a committer commits at most this many Adds per epoch; the rest wait for the next one. */
export const MAX_ADDS_PER_COMMIT = 10;
/** §9: a committer mines a group Welcome's PoW only up to this many bits. */
export const MAX_WELCOME_POW_BITS = 24;

/** An Add the committer makes on its own account (its own add(), a rejoin), with its KeyPackage. */
export interface WantedAdd {
  userId: UserIdHex;
  keyPackage: Uint8Array;
}

export interface CommitExtras {
  /** Carried before proposed and deferred Adds. */
  adds?: readonly WantedAdd[];
  removes?: readonly number[];
  /** Invitees left for this epoch by an earlier commit (GroupMeta.deferredAdds). */
  deferred?: readonly UserIdHex[];
  /** The member cap (§9, `maxMembers`); Adds beyond it are left out. */
  maxMembers?: number;
}

export interface CommitPlan {
  exclude: string[];
  adds: Uint8Array[];
  removes: number[];
  /** Invitees with a KeyPackage that did not fit this commit's 10 Adds: the next epoch's. */
  later: UserIdHex[];
}

/**
 * Which pending proposals a commit carries, and how. A member that joined in this epoch
 * subscribed only after its Welcome and may have missed proposals published before that; a
 * commit naming one by reference would be one it cannot process. So Adds and Removes are carried
 * by value (an Add with the invitee's freshly fetched KeyPackage, `keyPackageOf`; §9 leaves out
 * Adds without a valid bundle), and in an epoch that added members other members' Updates (which
 * cannot go by value) wait for the next epoch. The committer's own Remove stays by reference: the
 * hand-over commit is recognised by it. Adds are counted against the member cap and at most 10
 * go in one commit: the rest are `later`, for the next epoch.
 */
export function commitPlan(
  state: mls.GroupSession,
  meta: Pick<GroupMeta, 'epochAddedMembers'>,
  keyPackageOf: (userId: Uint8Array) => Uint8Array | undefined,
  extras: CommitExtras = {},
): CommitPlan {
  const committerLeaf = mls.committerOf(state).leafIndex;
  const plan: CommitPlan = { exclude: [], adds: [], removes: [...(extras.removes ?? [])], later: [] };
  const wanted: WantedAdd[] = [...(extras.adds ?? [])];
  for (const p of mls.pendingProposals(state)) {
    if (p.kind === 'add') {
      plan.exclude.push(p.ref);
      const kp = p.add && keyPackageOf(p.add.userId);
      if (kp) wanted.push({ userId: userIdToHex(p.add!.userId as UserId), keyPackage: kp });
    } else if (p.kind === 'remove' && p.removeLeaf !== committerLeaf) {
      plan.exclude.push(p.ref);
      if (p.removeLeaf !== undefined) plan.removes.push(p.removeLeaf);
    } else if (p.kind === 'update' && meta.epochAddedMembers) {
      plan.exclude.push(p.ref);
    }
  }
  for (const id of extras.deferred ?? []) {
    const kp = keyPackageOf(userIdFromHex(id));
    if (kp) wanted.push({ userId: id, keyPackage: kp });
  }
  const staying = mls.membersOf(state).filter((m) => !plan.removes.includes(m.leafIndex));
  // Each invitee once, and none that stays a member.
  const seen = new Set(staying.map((m) => userIdToHex(m.userId as UserId)));
  const fresh: WantedAdd[] = [];
  for (const w of wanted) {
    if (seen.has(w.userId)) continue;
    seen.add(w.userId);
    fresh.push(w);
  }
  const seats = Math.max(0, (extras.maxMembers ?? MAX_GROUP_MEMBERS) - staying.length);
  const fitting = fresh.slice(0, seats);
  plan.adds = fitting.slice(0, MAX_ADDS_PER_COMMIT).map((w) => w.keyPackage);
  plan.later = fitting.slice(MAX_ADDS_PER_COMMIT).map((w) => w.userId);
  return plan;
}

/** §9: receivers enforce the member cap on every commit, not only on Welcomes. */
export function exceedsMemberCap(state: mls.GroupSession, maxMembers: number): boolean {
  return mls.membersOf(state).length > maxMembers;
}

/** The invitees still deferred after a commit: this plan's, and earlier ones it did not look at. */
export function deferredAfter(plan: CommitPlan, earlier: readonly UserIdHex[] | undefined): UserIdHex[] {
  return [...new Set([...(earlier ?? []), ...plan.later])];
}

/** The committer's key refresh: an empty commit after `every` messages sent or seen, or 7 days. */
export function committerRefreshDue(meta: GroupMeta, now: number, every: number): boolean {
  return meta.messagesSinceCommit >= every || now - meta.lastCommitAt >= KEY_REFRESH_SECONDS;
}

/** Another member's key refresh: an Update proposal after `every` own messages, or 7 days. */
export function memberRefreshDue(
  state: mls.GroupSession,
  meta: GroupMeta,
  now: number,
  every: number,
): boolean {
  if (mls.isCommitter(state) || mls.hasPendingUpdate(state)) return false;
  return meta.ownMessagesSinceUpdate >= every || now - meta.lastUpdateAt >= KEY_REFRESH_SECONDS;
}

/**
 * Whether a key refresh could be due by the bookkeeping alone (either role); when not, housekeeping
 * need not read the group's MLS state at all.
 */
export function refreshMayBeDue(meta: GroupMeta, now: number, every: number): boolean {
  return (
    committerRefreshDue(meta, now, every) ||
    meta.ownMessagesSinceUpdate >= every ||
    now - meta.lastUpdateAt >= KEY_REFRESH_SECONDS
  );
}

export type EpochVerdict = 'process' | 'gap' | 'fork' | 'stale';

/**
 * How a message's clear epoch relates to ours. Above ours: we fell behind. A handshake below
 * ours: there is one commit per epoch from the one committer, so another commit for the epoch we
 * just left is a fork; anything older is stale. `leftPrevious` says whether we were in the epoch
 * before ours at all: a member that joined through a Welcome was not, and the commit for that
 * epoch is, as far as it can tell, the very commit whose Welcome it joined through (a committer's
 * outbox resends it after a restart), so it is stale, not a fork: the member cannot decrypt it to
 * compare, and it never had a branch of its own there. Application messages from past epochs go
 * to MLS, which keeps the keys of a few.
 */
export function judgeEpoch(
  header: { epoch: bigint; contentType: string },
  ours: bigint,
  leftPrevious: boolean,
): EpochVerdict {
  if (header.epoch > ours) return 'gap';
  if (header.contentType === 'application' || header.epoch === ours) return 'process';
  return header.contentType === 'commit' && header.epoch === ours - 1n && leftPrevious ? 'fork' : 'stale';
}

/** Whether a membership change we asked for holds in a group of `members` (user ids). */
export function intentDone(intent: GroupIntent, members: ReadonlySet<string>, self: UserIdHex): boolean {
  if (intent.kind === 'add') return members.has(intent.userId);
  if (intent.kind === 'remove') return !members.has(intent.userId);
  return !members.has(self);
}

/** Adds an intent unless the same one is already recorded. */
export function withIntent(intents: readonly GroupIntent[], intent: GroupIntent): GroupIntent[] {
  const same = (i: GroupIntent) =>
    i.kind === intent.kind && (i.kind === 'leave' || (intent.kind !== 'leave' && i.userId === intent.userId));
  return intents.some(same) ? [...intents] : [...intents, intent];
}

/**
 * The bookkeeping every commit resets, whether we made it or received it: the key-refresh counter,
 * the pending-proposal clock, whether the new epoch added members, and the intents it fulfilled.
 */
export function noteCommit(
  meta: GroupMeta,
  state: mls.GroupSession,
  addedMembers: number,
  now: number,
  self: UserIdHex,
): void {
  meta.messagesSinceCommit = 0;
  meta.lastCommitAt = now;
  meta.epochAddedMembers = addedMembers > 0;
  delete meta.pendingSince;
  const members = new Set(mls.membersOf(state).map((m) => userIdToHex(m.userId as UserId)));
  meta.intents = meta.intents.filter((i) => !intentDone(i, members, self));
}
