/**
 * Outbound 1:1 steps (PROTOCOL.md §5, §7): an application message, the committer's commit of the
 * peer's pending proposals, a non-committer's Update proposal. Each returns the record to commit,
 * the new MLS state and the outbox row framed in the state before it; the shell commits them
 * together and publishes afterwards.
 */
import { encodeContent, type ContentInput } from '../content.js';
import { inboxRow, sealInSession, type SealContext } from '../direct-seal.js';
import { MSG_TYPE } from '../labels.js';
import * as mls from '../mls/index.js';
import { unconfirmedEntry } from '../outgoing-content.js';
import type { DirectConversationRecord, OutboxRecord, PeerRecord, SessionRecord } from '../store.js';
import type { StepContext } from './context.js';
import { withNewEpoch } from './direct-session.js';

export interface DirectSendContext extends StepContext {
  seal: SealContext;
}

export interface DirectWrite {
  /**
   * The record to commit; its version is still the one read. A conversation record, so the commit
   * that saves it moves this very object to the stored version and the flow can write it again.
   */
  session: DirectConversationRecord;
  state: mls.GroupSession;
  row: OutboxRecord;
  /** What the committed state lets the shell wipe. */
  consumed: mls.Consumed;
}

/** Which key-refresh step, if any, goes before our next message (PROTOCOL.md §7). */
export function refreshBeforeSend(
  state: mls.GroupSession,
  session: SessionRecord,
  updateEveryMessages: number,
): 'commit' | 'propose-update' | undefined {
  if (mls.hasPendingProposals(state) && mls.isCommitter(state)) return 'commit';
  if (!mls.isCommitter(state) && session.messagesSinceCommit >= updateEveryMessages) return 'propose-update';
  return undefined;
}

async function row(
  ctx: DirectSendContext,
  framedIn: mls.GroupSession,
  peer: PeerRecord,
  message: Uint8Array,
): Promise<OutboxRecord> {
  const payload = await sealInSession(ctx.seal, framedIn, peer, { msgType: MSG_TYPE.message, mls: message });
  return inboxRow(ctx.seal, peer.userId, payload);
}

/** The committer commits the peer's pending proposals: a new epoch, new access keys. */
export async function directCommitPending(
  ctx: DirectSendContext,
  session: SessionRecord,
  state: mls.GroupSession,
  peer: PeerRecord,
): Promise<DirectWrite> {
  const committed = await mls.commitPending(ctx.mls, state);
  return {
    row: await row(ctx, state, peer, committed.commit),
    session: { ...(await withNewEpoch(ctx, session, committed.state)), kind: 'direct' },
    state: committed.state,
    consumed: committed.consumed,
  };
}

export async function directProposeUpdate(
  ctx: DirectSendContext,
  session: SessionRecord,
  state: mls.GroupSession,
  peer: PeerRecord,
): Promise<DirectWrite> {
  const proposed = await mls.proposeUpdate(ctx.mls, state);
  return {
    row: await row(ctx, state, peer, proposed.message),
    session: {
      ...session,
      kind: 'direct',
      state: mls.encodeSession(proposed.state),
      messagesSinceCommit: 0,
      updatedAt: ctx.clock.now(),
    },
    state: proposed.state,
    consumed: proposed.consumed,
  };
}

/**
 * An application message of any §8 type; while unconfirmed, its whole content is kept to re-send if
 * the session loses a race. Throws ArgumentError (nothing written) for content §8 does not allow.
 */
export async function directEncrypt(
  ctx: DirectSendContext,
  session: SessionRecord,
  state: mls.GroupSession,
  peer: PeerRecord,
  content: ContentInput,
): Promise<DirectWrite> {
  const encoded = encodeContent(content);
  const encrypted = await mls.encryptApplication(ctx.mls, state, encoded);
  return {
    row: await row(ctx, state, peer, encrypted.message),
    session: {
      ...session,
      kind: 'direct',
      state: mls.encodeSession(encrypted.state),
      messagesSinceCommit: session.messagesSinceCommit + 1,
      // A typing indicator re-sent after a lost race would only be stale: not kept.
      unconfirmedOutgoing:
        session.initiatedUnconfirmed && content.type !== 'typing'
          ? [...session.unconfirmedOutgoing, unconfirmedEntry(encoded)]
          : session.unconfirmedOutgoing,
      updatedAt: ctx.clock.now(),
    },
    state: encrypted.state,
    consumed: encrypted.consumed,
  };
}
