/**
 * Posting to a group's topic (PROTOCOL.md §9): an application message padded to the block size,
 * counted for the key refresh of both roles. The refresh that is due before it is its own step
 * (group-change.ts), committed first.
 */
import { encodeContent, type ContentInput } from '../content.js';
import { senderEntries } from '../content-senders.js';
import { committerRefreshDue, mayCommit, memberRefreshDue } from '../group-policy.js';
import type { Loaded } from '../group-records.js';
import type { HandlerData } from '../group-types.js';
import { PADDING_BLOCK } from '../labels.js';
import * as mls from '../mls/index.js';
import { hexId, stateWrite, topicRow, type GroupStepContext, type GroupWrite } from './group-write.js';

/** Whether our own leaf is due a refresh before we post (§9 "Key refresh"). */
export function refreshBeforeGroupSend(ctx: GroupStepContext, loaded: Loaded): boolean {
  return memberRefreshDue(loaded.state, loaded.meta, ctx.clock.now(), ctx.updateEveryMessages);
}

export async function groupSend(
  ctx: GroupStepContext,
  loaded: Loaded,
  content: ContentInput,
  data: HandlerData,
): Promise<GroupWrite> {
  const { record, state, meta } = loaded;
  const now = ctx.clock.now();
  const encrypted = await mls.encryptApplication(
    ctx.mls,
    state,
    encodeContent(content, { padTo: PADDING_BLOCK }),
  );
  meta.messagesSinceCommit += 1;
  meta.ownMessagesSinceUpdate += 1;
  const refreshDue = mayCommit(encrypted.state) && committerRefreshDue(meta, now, ctx.updateEveryMessages);
  return stateWrite(loaded, encrypted.state, now, {
    // Our own ids join the sender index too: another member's edit of them is dropped here as well.
    commit: {
      conversationData: data,
      messageSenders: senderEntries(record.groupId, content, hexId(ctx.selfId), now),
    },
    outbox: [topicRow(ctx, record.topicId, encrypted.message)],
    consumed: [encrypted.consumed],
    followUps: refreshDue ? [{ kind: 'commit', groupId: record.groupId }] : [],
  });
}
