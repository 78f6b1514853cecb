/**
 * Membership changes and key refresh we start (PROTOCOL.md §9): the committer commits at once; any
 * other member proposes, records the intent (re-proposed after a commit that did not carry it) and
 * leaves the commit to the committer. Each step works on the group as loaded in its lane.
 */
import type { UserIdHex } from '../brand.js';
import { ArgumentError } from '../errors.js';
import { withIntent } from '../group-policy.js';
import type { Loaded } from '../group-records.js';
import type { FetchedPeerBundle } from '../group-types.js';
import { userIdFromHex, userIdToHex } from '../identity.js';
import * as mls from '../mls/index.js';
import type { OutboxRecord } from '../store.js';
import { wantedAdd } from './group-create.js';
import {
  hexId,
  ourCommit,
  planCommit,
  stateWrite,
  topicRow,
  unique,
  type GroupStepContext,
  type GroupWrite,
} from './group-write.js';

/** §9: a proposal uncommitted this long lets any member propose the committer's Remove. */
export const STALE_PROPOSAL_SECONDS = 7 * 86_400;

/** Who of `userIds` is not in the group yet; refused when they would take it over our cap. */
export function newMembers(
  ctx: Pick<GroupStepContext, 'maxMembers'>,
  state: mls.GroupSession,
  userIds: readonly string[],
): UserIdHex[] {
  const current = new Set(mls.membersOf(state).map((m) => hexId(m.userId)));
  const ids = unique(userIds.map((u) => userIdToHex(userIdFromHex(u)))).filter((u) => !current.has(u));
  if (ids.length > 0 && current.size + ids.length > ctx.maxMembers) {
    throw new ArgumentError(`a group holds at most ${ctx.maxMembers} members (groups.maxMembers)`);
  }
  return ids;
}

type Proposed = { state: mls.GroupSession; message: Uint8Array; consumed: mls.Consumed };

/** Proposals of ours as topic rows, each framed in the state the previous one left. */
async function proposals(
  ctx: GroupStepContext,
  loaded: Loaded,
  propose: Array<(s: mls.GroupSession) => Promise<Proposed>>,
): Promise<{ state: mls.GroupSession; outbox: OutboxRecord[]; consumed: mls.Consumed[] }> {
  let state = loaded.state;
  const outbox: OutboxRecord[] = [];
  const consumed: mls.Consumed[] = [];
  for (const p of propose) {
    const made = await p(state);
    state = made.state;
    consumed.push(made.consumed);
    outbox.push(topicRow(ctx, loaded.record.topicId, made.message));
  }
  return { state, outbox, consumed };
}

export async function groupAdd(
  ctx: GroupStepContext,
  loaded: Loaded,
  bundles: readonly FetchedPeerBundle[],
): Promise<GroupWrite> {
  const { state, meta } = loaded;
  if (mls.isCommitter(state)) {
    const plan = planCommit(ctx, state, meta, () => undefined, { adds: bundles.map(wantedAdd) });
    const commit = await mls.commitGroup(ctx.mls, state, plan);
    return ourCommit(
      ctx,
      loaded,
      commit,
      bundles.map((b) => b.record),
    );
  }
  const made = await proposals(
    ctx,
    loaded,
    bundles.map((b) => (s) => mls.proposeAdd(ctx.mls, s, b.keyPackage)),
  );
  for (const b of bundles)
    meta.intents = withIntent(meta.intents, { kind: 'add', userId: b.record.userId as UserIdHex });
  meta.pendingSince ??= ctx.clock.now();
  return stateWrite(loaded, made.state, ctx.clock.now(), { outbox: made.outbox, consumed: made.consumed });
}

/** Undefined when none of them is in the group. */
export async function groupRemove(
  ctx: GroupStepContext,
  loaded: Loaded,
  ids: readonly UserIdHex[],
): Promise<GroupWrite | undefined> {
  const { state, meta } = loaded;
  const leaves = mls
    .membersOf(state)
    .filter((m) => ids.includes(hexId(m.userId)))
    .map((m) => m.leafIndex);
  if (leaves.length === 0) return undefined;
  if (mls.isCommitter(state)) {
    const plan = planCommit(ctx, state, meta, () => undefined, { removes: leaves });
    return ourCommit(ctx, loaded, await mls.commitGroup(ctx.mls, state, plan), []);
  }
  const made = await proposals(
    ctx,
    loaded,
    leaves.map((leaf) => (s) => mls.proposeRemove(ctx.mls, s, leaf)),
  );
  for (const id of ids) meta.intents = withIntent(meta.intents, { kind: 'remove', userId: id });
  meta.pendingSince ??= ctx.clock.now();
  return stateWrite(loaded, made.state, ctx.clock.now(), { outbox: made.outbox, consumed: made.consumed });
}

/**
 * Proposes our own Remove; the group state is deleted when the commit removing us arrives. The
 * committer's Remove is committed by the next-lowest member, which becomes the committer (§9). The
 * last member leaves at once.
 */
export async function groupLeave(ctx: GroupStepContext, loaded: Loaded): Promise<GroupWrite> {
  const { record, state, meta } = loaded;
  if (mls.membersOf(state).length === 1) {
    return {
      commit: { deleteConversations: [record.groupId] },
      consumed: [],
      events: [],
      followUps: [{ kind: 'forget', groupId: record.groupId, topicId: record.topicId, reason: 'left' }],
    };
  }
  const made = await proposals(ctx, loaded, [(s) => mls.proposeRemove(ctx.mls, s, mls.ownLeafIndex(s))]);
  meta.intents = withIntent(meta.intents, { kind: 'leave' });
  meta.pendingSince ??= ctx.clock.now();
  return stateWrite(loaded, made.state, ctx.clock.now(), { outbox: made.outbox, consumed: made.consumed });
}

/**
 * §9 "Key refresh": the committer commits with a path, others propose an Update (undefined while
 * one of ours waits for its commit).
 */
export async function groupRefreshKeys(
  ctx: GroupStepContext,
  loaded: Loaded,
): Promise<GroupWrite | undefined> {
  const { state, meta } = loaded;
  if (mls.isCommitter(state)) {
    const commit = await mls.commitGroup(
      ctx.mls,
      state,
      planCommit(ctx, state, meta, () => undefined),
    );
    return ourCommit(ctx, loaded, commit, []);
  }
  if (mls.hasPendingUpdate(state)) return undefined;
  const now = ctx.clock.now();
  const made = await proposals(ctx, loaded, [(s) => mls.proposeUpdate(ctx.mls, s)]);
  meta.ownMessagesSinceUpdate = 0;
  meta.pendingSince ??= now;
  meta.lastUpdateAt = now;
  return stateWrite(loaded, made.state, now, { outbox: made.outbox, consumed: made.consumed });
}

/**
 * §9: any member may propose the Remove of a committer that left proposals waiting 7 days.
 * Undefined when that no longer holds.
 */
export async function groupReplaceCommitter(
  ctx: GroupStepContext,
  loaded: Loaded,
): Promise<GroupWrite | undefined> {
  const { state, meta } = loaded;
  const now = ctx.clock.now();
  if (mls.isCommitter(state) || meta.pendingSince === undefined) return undefined;
  if (now - meta.pendingSince < STALE_PROPOSAL_SECONDS) return undefined;
  const committer = mls.committerOf(state).leafIndex;
  const made = await proposals(ctx, loaded, [(s) => mls.proposeRemove(ctx.mls, s, committer)]);
  // Counted afresh: the next attempt, if this one is not committed either, is 7 days away.
  meta.pendingSince = now;
  return stateWrite(loaded, made.state, now, { outbox: made.outbox, consumed: made.consumed });
}
