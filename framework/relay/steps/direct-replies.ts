/**
 * A 1:1 handler's replies, encrypted with the state that processed its message (PROTOCOL.md §7):
 * the committer first commits the peer's pending proposals, then each reply goes through the one
 * reply-encryption loop, sealed for the peer's inbox. Returns what to commit with the message.
 */
import type { AppContent } from '../content.js';
import { inboxRow, sealInSession } from '../direct-seal.js';
import type { HandlerError } from '../errors.js';
import type { Reply } from '../group-types.js';
import { MSG_TYPE } from '../labels.js';
import * as mls from '../mls/index.js';
import type { OutboxRowCheck } from '../outbox-quarantine.js';
import type { OutboxRecord, PeerRecord, SessionRecord } from '../store.js';
import { directCommitPending, type DirectSendContext } from './direct-send.js';
import { encryptReplies } from './encrypt-replies.js';

export interface DirectReplies {
  /** The record to commit (its `state` still to be encoded from `state`). */
  session: SessionRecord;
  state: mls.GroupSession;
  outbox: OutboxRecord[];
  consumed: mls.Consumed[];
  /** Replies left out because they could never be published. */
  refused: HandlerError[];
  /** The type and id of each reply sent, for the sender index. */
  sent: Array<{ type?: string; id: string }>;
}

export async function directReplies(
  ctx: DirectSendContext,
  loaded: { session: SessionRecord; state: mls.GroupSession; peer: PeerRecord },
  input: { replies: readonly Reply[]; answered: AppContent; check: OutboxRowCheck },
): Promise<DirectReplies> {
  let { session, state } = loaded;
  const { peer } = loaded;
  const outbox: OutboxRecord[] = [];
  const consumed: mls.Consumed[] = [];
  // §7: the committer commits the peer's pending proposals with its next message, replies too;
  // otherwise a peer asking for key updates would find its next Update refused.
  if (input.replies.length > 0 && mls.isCommitter(state) && mls.hasPendingProposals(state)) {
    const committed = await directCommitPending(ctx, session, state, peer);
    outbox.push(committed.row);
    consumed.push(committed.consumed);
    ({ session, state } = committed);
  }
  const encrypted = await encryptReplies(ctx, state, input.replies, input.answered, {
    row: async (framedIn, message) =>
      inboxRow(
        ctx.seal,
        peer.userId,
        await sealInSession(ctx.seal, framedIn, peer, { msgType: MSG_TYPE.message, mls: message }),
      ),
    check: input.check,
  });
  outbox.push(...encrypted.rows);
  consumed.push(...encrypted.consumed);
  return {
    state: encrypted.state,
    consumed,
    session: { ...session, messagesSinceCommit: session.messagesSinceCommit + outbox.length },
    outbox,
    refused: encrypted.refused,
    sent: encrypted.sent,
  };
}
