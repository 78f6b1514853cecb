/**
 * The back half of a group topic message (PROTOCOL.md §9, §10), after steps/group-message.ts let
 * MLS process it: our removal, a proposal, a commit, or an application message with what the
 * handler asked for. Each returns the write for the shell; the handler itself runs in the shell.
 */
import type { GroupIdHex, UnixSeconds } from '../brand.js';
import { tryDecodeContent } from '../content.js';
import { senderEntries } from '../content-senders.js';
import type { DropReason } from '../drops.js';
import type { HandlerError } from '../errors.js';
import { committerRefreshDue, mayCommit, noteCommit } from '../group-policy.js';
import type { Loaded } from '../group-records.js';
import type { GroupReceivedMessage } from '../group-types.js';
import type { HandlerRun } from '../handler.js';
import { userIdToHex } from '../identity.js';
import { PADDING_BLOCK } from '../labels.js';
import * as mls from '../mls/index.js';
import type { OutboxRowCheck } from '../outbox-quarantine.js';
import { rejoinRequestOpen } from '../rejoin-request.js';
import type { GroupConversationRecord } from '../store.js';
import { encryptReplies } from './encrypt-replies.js';
import { intentsAfterCommit, mergeIntents } from './group-intents.js';
import {
  hexId,
  membersEvent,
  stateWrite,
  topicRow,
  type GroupFollowUp,
  type GroupStepContext,
  type GroupWrite,
} from './group-write.js';

/** The digest that marks the message processed, committed with whatever it changed. */
export interface ProcessedMark {
  groupId: GroupIdHex;
  digest: string;
  at: UnixSeconds;
}

/**
 * A commit removed us: the Remove half of a re-add we asked for keeps the state until the Welcome
 * for our new leaf comes; otherwise we are out (§9: a removed member deletes the group state).
 */
export function groupRemoved(loaded: Loaded, processed: ProcessedMark): GroupWrite {
  const { record, state, meta } = loaded;
  if (rejoinRequestOpen(meta.rejoinRequest, processed.at)) {
    meta.readdPendingSince = processed.at;
    return stateWrite(loaded, state, processed.at, { commit: { processed } });
  }
  const reason = meta.intents.some((i) => i.kind === 'leave') ? 'left' : 'removed';
  return {
    commit: { deleteConversations: [record.groupId], processed },
    consumed: [],
    events: [],
    followUps: [{ kind: 'forget', groupId: record.groupId, topicId: record.topicId, reason }],
  };
}

/** A member's proposal waits for the committer's batch. */
export function groupProposal(
  loaded: Loaded,
  result: mls.ProcessedGroupMessage,
  processed: ProcessedMark,
): GroupWrite {
  loaded.meta.pendingSince ??= processed.at;
  return stateWrite(loaded, result.state, processed.at, {
    commit: { processed },
    consumed: [result.consumed],
    followUps: mayCommit(result.state) ? [{ kind: 'commit', groupId: loaded.record.groupId }] : [],
  });
}

export function groupCommitted(
  ctx: GroupStepContext,
  loaded: Loaded,
  result: mls.ProcessedGroupMessage,
  processed: ProcessedMark,
): GroupWrite {
  const { record, meta } = loaded;
  const now = processed.at;
  noteCommit(meta, result.state, result.added.length, now, userIdToHex(ctx.selfId));
  if (!mls.hasPendingUpdate(result.state)) meta.lastUpdateAt = Math.max(meta.lastUpdateAt, now);
  meta.intents = intentsAfterCommit(meta.intents);
  const groupId = record.groupId;
  return stateWrite(loaded, result.state, now, {
    commit: { processed },
    consumed: [result.consumed],
    events: membersEvent(groupId, result.added, result.removed, result.state),
    followUps: [
      ...(meta.intents.length > 0 ? [{ kind: 'carry-out' as const, groupIds: [groupId] }] : []),
      // A newcomer below us became committer and left a stale node on our path; one Update from
      // us clears it before later Adds would make Welcomes that ts-mls joiners refuse.
      ...(mls.needsPathRefresh(result.state) ? [{ kind: 'update-keys' as const, groupId }] : []),
    ],
  });
}

/** The message as the application sees it; undefined when its content cannot be read. */
export function groupReceived(
  loaded: Loaded,
  result: mls.ProcessedGroupMessage,
  receivedAt: UnixSeconds,
): GroupReceivedMessage | undefined {
  const { record, meta } = loaded;
  const content = tryDecodeContent(result.plaintext);
  return (
    content && {
      from: hexId(result.sender.userId),
      conversation: {
        kind: 'group',
        id: record.groupId,
        groupId: record.groupId,
        topicId: record.topicId,
        ...(meta.name !== undefined ? { name: meta.name } : {}),
      },
      content,
      receivedAt,
    }
  );
}

export interface GroupApplicationInput {
  result: mls.ProcessedGroupMessage;
  received: GroupReceivedMessage | undefined;
  /** What the handler asked for, when it ran. */
  run: HandlerRun | undefined;
  /** Other groups whose bookkeeping records the handler's changes (loaded by the shell). */
  changed: GroupConversationRecord[];
  check: OutboxRowCheck;
  processed: ProcessedMark;
}

export interface GroupApplicationStep {
  write: GroupWrite;
  /** Replies left out because they could never be published. */
  refused: HandlerError[];
  /** MLS accepted it: the ratchet moved on even if the application cannot read it (§10). */
  drop?: DropReason;
}

/** An application message with the handler's replies, data and group changes, in one commit. */
export async function groupApplication(
  ctx: GroupStepContext,
  loaded: Loaded,
  input: GroupApplicationInput,
): Promise<GroupApplicationStep> {
  const { record, meta } = loaded;
  const { result, received, run, processed } = input;
  const now = processed.at;
  meta.messagesSinceCommit += 1;
  let state = result.state;
  const consumed = [result.consumed];
  const outbox = [];
  let refused: HandlerError[] = [];
  let sent: Array<{ type?: string; id: string }> = [];
  const followUps: GroupFollowUp[] = [];
  if (run && received) {
    const encrypted = await encryptReplies(ctx, state, run.replies, received.content, {
      padTo: PADDING_BLOCK,
      row: (_framedIn, message) => Promise.resolve(topicRow(ctx, record.topicId, message)),
      check: input.check,
    });
    ({ refused, state, sent } = encrypted);
    consumed.push(...encrypted.consumed);
    outbox.push(...encrypted.rows);
    meta.messagesSinceCommit += encrypted.rows.length;
    meta.ownMessagesSinceUpdate += encrypted.rows.length;
    const changes = [...run.changes.entries()];
    mergeIntents(meta, changes.find(([id]) => id === record.groupId)?.[1] ?? []);
    if (changes.length > 0) followUps.push({ kind: 'carry-out', groupIds: changes.map(([id]) => id) });
  }
  if (mls.isCommitter(state) && committerRefreshDue(meta, now, ctx.updateEveryMessages))
    followUps.push({ kind: 'commit', groupId: record.groupId });
  const self = hexId(ctx.selfId as Uint8Array);
  const senders = [
    ...(received ? senderEntries(record.groupId, received.content, received.from, now) : []),
    ...sent.flatMap((r) => senderEntries(record.groupId, r, self, now)),
  ];
  const write = stateWrite(loaded, state, now, {
    commit: {
      processed,
      conversationData: run?.conversationData ?? [],
      ...(senders.length > 0 ? { messageSenders: senders } : {}),
    },
    outbox,
    consumed,
    followUps,
  });
  write.commit.conversations!.push(...input.changed);
  return { write, refused, ...(received ? {} : { drop: 'content' as const }) };
}
