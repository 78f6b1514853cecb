/**
 * The one reply-encryption loop for both conversation kinds (ARCHITECTURE.md "One conversation
 * model"): each reply a handler asked for is encrypted with the state the previous one left, framed
 * for its conversation (a sealed inbox envelope or a group topic payload) and checked against what
 * the transport can ever publish. A reply that can never go out is refused, not committed, and the
 * state does not advance for it. No I/O and no callbacks: the caller commits and reports.
 */
import type { AppContent } from '../content.js';
import { ArgumentError, HandlerError } from '../errors.js';
import type { Reply } from '../group-types.js';
import { replyContent } from '../handler.js';
import * as mls from '../mls/index.js';
import { refusedReply, type OutboxRowCheck } from '../outbox-quarantine.js';
import type { OutboxRecord } from '../store.js';
import type { StepContext } from './context.js';

export interface ReplyFraming {
  /** Group payloads are padded to this block (PROTOCOL.md §8, §9); inbox envelopes are not. */
  padTo?: number;
  /** The outbox row carrying one encrypted reply; `framedIn` is the state it was encrypted with. */
  row(framedIn: mls.GroupSession, message: Uint8Array): Promise<OutboxRecord>;
  /** Why a row could never be published, or undefined. */
  check: OutboxRowCheck;
}

export interface EncryptedReplies {
  state: mls.GroupSession;
  rows: OutboxRecord[];
  /** Keys the committed state no longer needs; wipe only after the commit is durable. */
  consumed: mls.Consumed[];
  /** One error per reply that was left out. */
  refused: HandlerError[];
  /** The type and id of each reply in `rows`, for the sender index (content-senders.ts). */
  sent: Array<{ type?: string; id: string }>;
}

export async function encryptReplies(
  ctx: Pick<StepContext, 'mls' | 'random'>,
  state: mls.GroupSession,
  replies: readonly Reply[],
  answered: AppContent,
  framing: ReplyFraming,
): Promise<EncryptedReplies> {
  const out: EncryptedReplies = { state, rows: [], consumed: [], refused: [], sent: [] };
  for (const r of replies) {
    let content: Uint8Array;
    const id = r.id ?? ctx.random.uuid();
    try {
      const padding = framing.padTo !== undefined ? { padTo: framing.padTo } : {};
      content = replyContent(r, answered, id, padding);
    } catch (e) {
      // Content no receiver could read (a reaction without reply_to…) is the handler's mistake:
      // left out and reported like a reply too large to publish, never a failed message.
      if (!(e instanceof ArgumentError)) throw e;
      out.refused.push(new HandlerError(`reply not sent: ${e.message}`, { cause: e }));
      continue;
    }
    const encrypted = await mls.encryptApplication(ctx.mls, out.state, content);
    const row = await framing.row(out.state, encrypted.message);
    const refused = refusedReply(row, framing.check);
    if (refused) {
      out.refused.push(refused);
      continue;
    }
    out.rows.push(row);
    out.sent.push({ ...(r.type !== undefined ? { type: r.type } : {}), id });
    out.state = encrypted.state;
    out.consumed.push(encrypted.consumed);
  }
  return out;
}
