/**
 * What every group step (PROTOCOL.md §9) returns and the pieces they share: the context a group
 * step may use, the write it hands the shell (changes to commit, keys to wipe once durable, events
 * to emit, follow-ups to run afterwards), the topic row, the commit plan with our member cap, and
 * the write for a commit we made with its Welcomes. No store, no timers, no emitter.
 */
import type { TopicId, UserIdHex } from '../brand.js';
import { inboxRow, sealWithPow, type SealContext } from '../direct-seal.js';
import { encodeGroupPayload } from '../envelope.js';
import { ProtocolError } from '../errors.js';
import type { GroupMeta } from '../group-meta.js';
import {
  commitPlan,
  deferredAfter,
  noteCommit,
  type CommitExtras,
  type CommitPlan,
} from '../group-policy.js';
import { updatedRecord, type Loaded } from '../group-records.js';
import type { GroupEvent } from '../group-types.js';
import { signSealedSenderKey, userIdToHex } from '../identity.js';
import { MSG_TYPE } from '../labels.js';
import * as mls from '../mls/index.js';
import type { InboundCommit, OutboxRecord, PeerRecord } from '../store.js';
import { groupTopic } from '../topics.js';
import type { StepContext } from './context.js';

const DAY = 86_400;
/** A group message left unread this long by an offline member is of no use to it any more. */
const GROUP_MESSAGE_EXPIRY_SECONDS = 7 * DAY;
/**
 * Adds left for the next epoch are committed after §9's longest batching delay, so that the
 * previous commit's joiners have had time to subscribe and do not miss the commit.
 */
export const DEFERRED_ADDS_DELAY_MS = 2000;

export interface GroupStepContext extends StepContext {
  /** Sealing Welcomes and rejoin requests to a peer's inbox (identity, miner, topic prefix). */
  seal: SealContext;
  /** Largest group we create, grow or accept (groups.maxMembers). */
  maxMembers: number;
  updateEveryMessages: number;
}

/** Work the shell runs after a write is durable; none of it may be lost in the step's commit. */
export type GroupFollowUp =
  | { kind: 'commit'; groupId: string; delayMs?: number }
  /** Carry out the stored intents of these groups. */
  | { kind: 'carry-out'; groupIds: string[] }
  | { kind: 'update-keys'; groupId: string }
  | { kind: 'replace-committer'; groupId: string }
  | { kind: 'rejoin'; groupId: string }
  /** We are out of the group: drop its topic, timers and cached state; emit 'left'. */
  | { kind: 'forget'; groupId: string; topicId: string; reason: 'removed' | 'left' }
  /** Our KeyPackage is spent: publish a fresh bundle. */
  | { kind: 'republish' };

export interface GroupWrite {
  commit: InboundCommit;
  /** The state the commit writes, for the cache. */
  decoded?: mls.GroupSession;
  /** Keys the committed state no longer needs; wiped only after the commit is durable. */
  consumed: mls.Consumed[];
  events: GroupEvent[];
  followUps: GroupFollowUp[];
  /** The group as written, for a step that goes on from it in the same lane. */
  next?: Loaded;
}

export const hexId = (id: Uint8Array): UserIdHex => userIdToHex(id as never);

export function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

export function topicRow(
  ctx: Pick<GroupStepContext, 'seal' | 'clock' | 'random'>,
  topicId: string,
  message: Uint8Array,
  awaitAck = false,
): OutboxRecord {
  return {
    id: ctx.random.uuid(),
    topic: groupTopic(ctx.seal.prefix, topicId as TopicId),
    payload: encodeGroupPayload(message),
    messageExpirySeconds: GROUP_MESSAGE_EXPIRY_SECONDS,
    createdAt: ctx.clock.now(),
    ...(awaitAck ? { awaitAck: true } : {}),
  };
}

/** The write of a group's new state and bookkeeping with what it publishes. */
export function stateWrite(
  loaded: Loaded,
  state: mls.GroupSession,
  now: number,
  rest: Partial<Omit<GroupWrite, 'decoded' | 'next'>> & { outbox?: OutboxRecord[] } = {},
): GroupWrite {
  const record = updatedRecord(loaded.record, state, loaded.meta, now, loaded.state);
  const { outbox, commit, ...others } = rest;
  return {
    consumed: [],
    events: [],
    followUps: [],
    ...others,
    commit: { ...commit, conversations: [record], ...(outbox ? { outbox } : {}) },
    decoded: state,
    next: { record, state, meta: loaded.meta },
  };
}

/**
 * commitPlan with our member cap, recording in `meta` the invitees left for the next epoch (the
 * write of the commit schedules that commit).
 */
export function planCommit(
  ctx: Pick<GroupStepContext, 'maxMembers'>,
  state: mls.GroupSession,
  meta: GroupMeta,
  keyPackageOf: (userId: Uint8Array) => Uint8Array | undefined,
  extras: Omit<CommitExtras, 'maxMembers'> = {},
): CommitPlan {
  const plan = commitPlan(state, meta, keyPackageOf, { ...extras, maxMembers: ctx.maxMembers });
  meta.deferredAdds = deferredAfter(plan, meta.deferredAdds);
  return plan;
}

/** One sealed group Welcome per added member whose bundle we hold (PROTOCOL.md §9 "Invitation"). */
export async function welcomeRows(
  ctx: Pick<GroupStepContext, 'seal'>,
  commit: mls.GroupCommit,
  peers: readonly PeerRecord[],
  name: string | undefined,
): Promise<OutboxRecord[]> {
  if (commit.added.length === 0) return [];
  if (commit.welcome === undefined) throw new ProtocolError('a commit adding members produced no Welcome');
  const rows: OutboxRecord[] = [];
  for (const member of commit.added) {
    const peer = peers.find((p) => p.userId === hexId(member.userId));
    // Only invitees whose bundle was fetched are planned; no sealed-sender key, no Welcome.
    if (!peer) continue;
    const payload = await sealWithPow(ctx.seal, peer, {
      msgType: MSG_TYPE.groupWelcome,
      mls: commit.welcome,
      ratchetTree: commit.ratchetTree,
      sealedSenderKey: ctx.seal.identity.sealPublic,
      sealedSenderKeySignature: signSealedSenderKey(ctx.seal.identity),
      ...(name !== undefined ? { groupName: name } : {}),
    });
    rows.push(inboxRow(ctx.seal, peer.userId, payload));
  }
  return rows;
}

/** The 'members' event for a commit, when it changed who is in the group. */
export function membersEvent(
  groupId: string,
  added: readonly mls.Member[],
  removed: readonly mls.Member[],
  state: mls.GroupSession,
): GroupEvent[] {
  if (added.length === 0 && removed.length === 0) return [];
  return [
    {
      kind: 'members',
      groupId,
      added: added.map((m) => hexId(m.userId)),
      removed: removed.map((m) => hexId(m.userId)),
      epoch: mls.epochOf(state),
    },
  ];
}

/**
 * A commit we made, written with its topic row; the Welcomes follow only after the broker
 * acknowledged the commit (the row is marked awaitAck), so no one joins an epoch others never see.
 */
export async function ourCommit(
  ctx: GroupStepContext,
  loaded: Loaded,
  commit: mls.GroupCommit,
  peers: readonly PeerRecord[],
  extra: Pick<InboundCommit, 'envelope'> = {},
): Promise<GroupWrite> {
  const { record, meta } = loaded;
  const now = ctx.clock.now();
  const welcomes = await welcomeRows(ctx, commit, peers, meta.name);
  noteCommit(meta, commit.state, commit.added.length, now, userIdToHex(ctx.selfId));
  // Our commit carried a path: our own leaf is fresh too.
  meta.lastUpdateAt = now;
  const commitRow = topicRow(ctx, record.topicId, commit.commit, true);
  return stateWrite(loaded, commit.state, now, {
    commit: {
      ...extra,
      peers: peers.filter((p) => commit.added.some((m) => hexId(m.userId) === p.userId)),
    },
    // A Welcome depends on its commit: quarantined with it, never released without it.
    outbox: [commitRow, ...welcomes.map((w) => ({ ...w, dependsOn: commitRow.id }))],
    consumed: [commit.consumed],
    events: membersEvent(record.groupId, commit.added, commit.removed, commit.state),
    followUps: meta.deferredAdds?.length
      ? [{ kind: 'commit', groupId: record.groupId, delayMs: DEFERRED_ADDS_DELAY_MS }]
      : [],
  });
}
