/**
 * Creating a group (PROTOCOL.md §9 "Invitation"): a new MLS group with us as committer and, when
 * there are invitees, the first commit adding them with their sealed Welcomes. The shell subscribes
 * to the topic before it commits, so nothing a new member posts is missed.
 */
import { groupIdHexOf, type GroupId, type UserIdHex } from '../brand.js';
import { ArgumentError } from '../errors.js';
import { MAX_GROUP_NAME_BYTES } from '../envelope.js';
import { newGroupMeta, serializeGroupMeta } from '../group-meta.js';
import type { WantedAdd } from '../group-policy.js';
import { groupStateColumns } from '../group-records.js';
import type { FetchedPeerBundle } from '../group-types.js';
import { userIdFromHex, userIdToHex } from '../identity.js';
import * as mls from '../mls/index.js';
import type { GroupConversationRecord, OutboxRecord } from '../store.js';
import { topicIdForGroup } from '../topics.js';
import {
  DEFERRED_ADDS_DELAY_MS,
  hexId,
  planCommit,
  unique,
  welcomeRows,
  type GroupStepContext,
  type GroupWrite,
} from './group-write.js';

export const wantedAdd = (b: FetchedPeerBundle): WantedAdd => ({
  userId: b.record.userId as UserIdHex,
  keyPackage: b.keyPackage,
});

/** The invitees of a new group (ourselves left out), refused when over our cap or the name too long. */
export function groupInvitees(
  ctx: Pick<GroupStepContext, 'selfId' | 'maxMembers'>,
  members: readonly string[],
  name: string | undefined,
): ReturnType<typeof userIdToHex>[] {
  const self = userIdToHex(ctx.selfId);
  const ids = unique(members.map((m) => userIdToHex(userIdFromHex(m)))).filter((m) => m !== self);
  if (ids.length + 1 > ctx.maxMembers) {
    throw new ArgumentError(`a group holds at most ${ctx.maxMembers} members (groups.maxMembers)`);
  }
  if (name !== undefined && new TextEncoder().encode(name).length > MAX_GROUP_NAME_BYTES) {
    throw new ArgumentError(`a group name is at most ${MAX_GROUP_NAME_BYTES} UTF-8 bytes`);
  }
  return ids;
}

export interface CreatedGroup {
  groupId: string;
  topicId: string;
  write: GroupWrite;
}

export async function groupCreate(
  ctx: GroupStepContext,
  bundles: readonly FetchedPeerBundle[],
  name: string | undefined,
): Promise<CreatedGroup> {
  const created = await mls.createGroup(ctx.mls, ctx.seal.identity);
  const groupIdBytes = mls.groupIdOf(created.state);
  const groupId = groupIdHexOf(groupIdBytes);
  const topicId = topicIdForGroup(groupIdBytes as GroupId);
  const now = ctx.clock.now();
  let state = created.state;
  let outbox: OutboxRecord[] = [];
  const consumed: mls.Consumed[] = [created.consumed];
  const meta = newGroupMeta(now, name !== undefined ? { name } : {});
  if (bundles.length > 0) {
    const plan = planCommit(ctx, state, meta, () => undefined, { adds: bundles.map(wantedAdd) });
    const commit = await mls.commitGroup(ctx.mls, state, plan);
    state = commit.state;
    consumed.push(commit.consumed);
    outbox = await welcomeRows(
      ctx,
      commit,
      bundles.map((b) => b.record),
      name,
    );
  }
  const record: GroupConversationRecord = {
    kind: 'group',
    groupId,
    topicId,
    ...groupStateColumns(state),
    epoch: mls.epochOf(state),
    meta: serializeGroupMeta(meta),
    updatedAt: now,
    version: 0,
  };
  const members = mls.membersOf(state).map((m) => hexId(m.userId));
  return {
    groupId,
    topicId,
    write: {
      commit: { conversations: [record], peers: bundles.map((b) => b.record), outbox },
      decoded: state,
      consumed,
      events: [{ kind: 'created', groupId, topicId, members }],
      followUps: meta.deferredAdds?.length
        ? [{ kind: 'commit', groupId, delayMs: DEFERRED_ADDS_DELAY_MS }]
        : [],
      next: { record, state, meta },
    },
  };
}
