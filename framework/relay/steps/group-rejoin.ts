/**
 * GROUP_REJOIN (PROTOCOL.md §9, version 2), both sides. The member that fell behind: whether to ask
 * (or give up), and the request sealed to the committer with a fresh KeyPackage. The committer:
 * the request's checks, cheapest first, and the commit removing the old leaf and adding the new.
 */
import type { UnixSeconds, UserIdHex } from '../brand.js';
import { fromHex, toHex } from '../bytes.js';
import { inboxRow, sealWithPow } from '../direct-seal.js';
import type { DropReason } from '../drops.js';
import type { Loaded } from '../group-records.js';
import type { OpenedEnvelope } from '../inbound-envelope.js';
import { MSG_TYPE } from '../labels.js';
import * as mls from '../mls/index.js';
import { memberIsBehind, signRejoin, verifyRejoin, type RejoinClaim } from '../rejoin.js';
import { newRejoinRequest, REJOIN_REQUEST_SECONDS } from '../rejoin-request.js';
import type { OutboxRecord, PeerRecord, StoredKeyPackage } from '../store.js';
import { replayEntry } from '../inbound-envelope.js';
import { ourCommit, planCommit, stateWrite, type GroupStepContext, type GroupWrite } from './group-write.js';

/** A member asks, and the committer serves a member, at most once in this time. */
export const REJOIN_INTERVAL_SECONDS = 600;

// ---------------------------------------------------------------------------- the member

export type RejoinDue = { kind: 'give-up' } | { kind: 'wait' } | { kind: 'ask'; committer: mls.Member };

/** After a message from an epoch above ours. */
export function rejoinDue(loaded: Loaded, now: number): RejoinDue {
  const { state, meta } = loaded;
  const waiting = meta.readdPendingSince;
  // Removed, and the Welcome that should have re-added us never came.
  if (waiting !== undefined && now - waiting >= REJOIN_REQUEST_SECONDS) return { kind: 'give-up' };
  if (waiting !== undefined) return { kind: 'wait' };
  const asked = meta.rejoinRequestedAt;
  if (asked !== undefined && now - asked < REJOIN_INTERVAL_SECONDS) return { kind: 'wait' };
  const committer = mls.committerOf(state);
  if (committer.leafIndex === mls.ownLeafIndex(state)) return { kind: 'wait' };
  return { kind: 'ask', committer };
}

/** Removed, and the Welcome that should have re-added us never came: we are out. */
export function rejoinGivenUp(loaded: Loaded): GroupWrite {
  const { groupId, topicId } = loaded.record;
  return {
    commit: { deleteConversations: [groupId] },
    consumed: [],
    events: [],
    followUps: [{ kind: 'forget', groupId, topicId, reason: 'removed' }],
  };
}

/** Our request, made outside the lane (mining takes time); `keyPackage` is stored before it goes. */
export interface RejoinAsk {
  keyPackage: StoredKeyPackage;
  row: OutboxRecord;
  committerKey: Uint8Array;
  keyPackageRef: Uint8Array;
}

export async function rejoinAsk(
  ctx: GroupStepContext,
  loaded: Loaded,
  committer: { identityKey: Uint8Array; bundle: PeerRecord },
): Promise<RejoinAsk> {
  const now = ctx.clock.now();
  const kp = await mls.generateKeyPackage(ctx.mls, ctx.seal.identity, now);
  const groupIdBytes = fromHex(loaded.record.groupId);
  const epoch = mls.epochOf(loaded.state);
  const claim = { groupId: groupIdBytes, epoch, keyPackage: kp.keyPackage, sentAt: now };
  const payload = await sealWithPow(
    ctx.seal,
    committer.bundle,
    {
      msgType: MSG_TYPE.groupRejoin,
      mls: kp.keyPackage,
      groupId: groupIdBytes,
      rejoinEpoch: epoch,
      rejoinSignature: signRejoin(ctx.seal.identity, claim),
    },
    now,
  );
  return {
    keyPackage: {
      ref: toHex(kp.ref),
      keyPackage: kp.keyPackage,
      privateKeyPackage: kp.privateKeyPackage,
      createdAt: now,
      notAfter: kp.notAfter as UnixSeconds,
      // Not the bundle's KeyPackage: retained only as long as a superseded one.
      supersededAt: now,
    },
    row: inboxRow(ctx.seal, committer.bundle.userId, payload),
    committerKey: committer.identityKey,
    keyPackageRef: kp.ref,
  };
}

/** The request recorded with its row: the only Welcome for this group we accept answers it. */
export function rejoinAsked(loaded: Loaded, ask: RejoinAsk, now: number): GroupWrite {
  loaded.meta.rejoinRequestedAt = now;
  loaded.meta.rejoinRequest = newRejoinRequest(now, ask.committerKey, ask.keyPackageRef);
  return stateWrite(loaded, loaded.state, now, { outbox: [ask.row] });
}

// ---------------------------------------------------------------------------- the committer

export interface RejoinRequestRead {
  groupId: string;
  claim: RejoinClaim;
  signature: Uint8Array;
}

/** The request's fields; a rejoin never comes with a session's access token. */
export function readRejoin(opened: OpenedEnvelope): RejoinRequestRead | { drop: DropReason } {
  const { inner } = opened;
  if (opened.tokenSession !== undefined) return { drop: 'access_session' };
  if (!inner.groupId || !inner.rejoinSignature || inner.rejoinEpoch === undefined)
    return { drop: 'inner_payload' };
  return {
    groupId: toHex(inner.groupId),
    claim: {
      groupId: inner.groupId,
      epoch: inner.rejoinEpoch,
      keyPackage: inner.mls,
      sentAt: opened.envelope.sentAt,
    },
    signature: inner.rejoinSignature,
  };
}

/** Whether we re-add this member now: cheapest checks first, the signature last. */
export async function checkRejoin(
  ctx: GroupStepContext,
  loaded: Loaded | undefined,
  request: RejoinRequestRead,
  sender: { userId: UserIdHex; identityKey: Uint8Array },
  now: number,
): Promise<DropReason | undefined> {
  if (!loaded || !mls.isCommitter(loaded.state)) return 'rejoin_invalid';
  const member = mls.memberByIdentityKey(loaded.state, sender.identityKey);
  if (!member || member.leafIndex === mls.ownLeafIndex(loaded.state)) return 'rejoin_invalid';
  // Before the signature checks: a member asking again and again costs no verification.
  const served = loaded.meta.rejoinsServed[sender.userId];
  if (served !== undefined && now - served < REJOIN_INTERVAL_SECONDS) return 'rejoin_quota';
  let kp: mls.VerifiedKeyPackage;
  try {
    kp = await mls.verifyKeyPackage(ctx.mls, request.claim.keyPackage, now);
  } catch {
    return 'rejoin_invalid';
  }
  if (toHex(kp.identityKey) !== toHex(sender.identityKey)) return 'rejoin_invalid';
  if (!verifyRejoin(sender.identityKey, request.claim, request.signature)) return 'rejoin_invalid';
  // §9 v2: a forged clear epoch makes a member ask; only one that is really behind is re-added.
  if (!memberIsBehind(request.claim.epoch, mls.epochOf(loaded.state))) return 'rejoin_not_behind';
  return undefined;
}

/** In the lane, on the group as it is now: the commit removing the old leaf and adding the new. */
export async function serveRejoin(
  ctx: GroupStepContext,
  loaded: Loaded | undefined,
  input: { opened: OpenedEnvelope; sender: UserIdHex; bundle: PeerRecord; now: number },
): Promise<{ drop: DropReason } | { drop?: undefined; write: GroupWrite }> {
  const { opened, sender, now } = input;
  const current = loaded && mls.memberByIdentityKey(loaded.state, opened.inner.senderIdentityKey);
  if (!loaded || !current || !mls.isCommitter(loaded.state)) return { drop: 'rejoin_invalid' };
  const plan = planCommit(ctx, loaded.state, loaded.meta, () => undefined, {
    adds: [{ userId: sender, keyPackage: opened.inner.mls }],
    removes: [current.leafIndex],
  });
  const commit = await mls.commitGroup(ctx.mls, loaded.state, plan);
  const served = loaded.meta.rejoinsServed;
  for (const [id, at] of Object.entries(served)) {
    if (now - at >= REJOIN_INTERVAL_SECONDS) delete served[id];
  }
  served[sender] = now;
  return { write: await ourCommit(ctx, loaded, commit, [input.bundle], { envelope: replayEntry(opened) }) };
}
