/**
 * The 1:1 session record as MLS states change it (PROTOCOL.md §5, §7): a new session on either
 * side of a Welcome, and the roll of access keys at every new epoch.
 */
import type { GroupIdHex, UnixSeconds, UserIdHex } from '../brand.js';
import { LABEL } from '../labels.js';
import * as mls from '../mls/index.js';
import type { DirectConversationRecord, SessionRecord } from '../store.js';
import type { StepContext } from './context.js';

/** The key peers derive access tokens from for envelopes addressed to us in this epoch. */
export function inboundAccessKey(ctx: StepContext, state: mls.GroupSession): Promise<Uint8Array> {
  return mls.exportSecret(ctx.mls, state, LABEL.access, ctx.selfId, 32);
}

/** Session record after an epoch change: access keys roll, counters reset. */
export async function withNewEpoch(
  ctx: StepContext,
  session: SessionRecord,
  state: mls.GroupSession,
): Promise<SessionRecord> {
  const current = await inboundAccessKey(ctx, state);
  return {
    ...session,
    state: mls.encodeSession(state),
    epoch: mls.epochOf(state),
    inboundAccess: { current, previous: session.inboundAccess.current },
    messagesSinceCommit: 0,
    updatedAt: ctx.clock.now(),
  };
}

/** A session just set up, by us (`initiated`: unconfirmed until the peer speaks) or by the peer. */
export async function newDirectSession(
  ctx: StepContext,
  state: mls.GroupSession,
  groupId: GroupIdHex,
  peerId: UserIdHex,
  initiated: boolean,
  now: UnixSeconds,
): Promise<DirectConversationRecord> {
  return {
    kind: 'direct',
    groupId,
    peerId,
    state: mls.encodeSession(state),
    epoch: mls.epochOf(state),
    initiatedUnconfirmed: initiated,
    version: 0,
    inboundAccess: { current: await inboundAccessKey(ctx, state) },
    messagesSinceCommit: 0,
    unconfirmedOutgoing: [],
    updatedAt: now,
    unusedSince: now,
  };
}
