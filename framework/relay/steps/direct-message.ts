/**
 * The 1:1 message step (PROTOCOL.md §5–§7, §10) over the loaded session: the sender owns the
 * session, the message is new, MLS accepts it, and the MLS sender is the envelope's sender. Returns
 * the record to commit (state still to be encoded from whatever state the replies leave), the
 * message for the handler, and what the committed state lets the shell wipe; or why to drop.
 * No store, no transport: the shell loaded `loaded` and commits the result.
 */
import type { UnixSeconds, UserIdHex } from '../brand.js';
import { toHex } from '../bytes.js';
import { tryDecodeContent } from '../content.js';
import type { DropReason } from '../drops.js';
import type { InnerPayload } from '../envelope.js';
import type { DirectReceivedMessage } from '../handler.js';
import * as mls from '../mls/index.js';
import type { SessionRecord } from '../store.js';
import type { StepContext } from './context.js';
import { withNewEpoch } from './direct-session.js';

export interface DirectLoaded {
  session: SessionRecord;
  /** The digest was processed in this session before. */
  processed: boolean;
  /** The decoded state when a cache holds the one of `session.version`; else it is decoded here. */
  cached?: mls.GroupSession;
}

export interface DirectMessageInput {
  inner: Pick<InnerPayload, 'mls' | 'senderIdentityKey'>;
  /** `inner.mls` decoded already (at the edge); decoded here when absent. */
  message?: mls.DecodedMessage;
  sender: UserIdHex;
  now: UnixSeconds;
}

export interface DirectMessageOutcome {
  drop?: undefined;
  kind: mls.ProcessedMessage['kind'];
  /** The MLS state after the message; replies continue from it. */
  state: mls.GroupSession;
  /** The record to commit; its `state` field is encoded by the shell from the final state. */
  next: SessionRecord;
  /** An application message the application can read, for the handler and the 'message' event. */
  received?: DirectReceivedMessage;
  consumed: mls.Consumed;
}

export type DirectMessageStep = DirectMessageOutcome | { drop: DropReason };

export async function directMessage(
  ctx: StepContext,
  loaded: DirectLoaded,
  input: DirectMessageInput,
  log: (err: string) => void = () => undefined,
): Promise<DirectMessageStep> {
  const { session } = loaded;
  const { inner, sender, now } = input;
  if (session.peerId !== sender) return { drop: 'sender_binding' };
  if (loaded.processed) return { drop: 'duplicate' };
  const state = loaded.cached ?? mls.decodeSession(session.state);
  let result: mls.ProcessedMessage;
  try {
    // processMessage decrypts the sender data itself and returns a new state without touching
    // `state`, so the binding is checked on its result, before anything is kept.
    result = await mls.processMessage(ctx.mls, state, input.message ?? inner.mls);
  } catch (e) {
    log((e as Error).message);
    return { drop: 'mls' };
  }
  if (toHex(result.sender.identityKey) !== toHex(inner.senderIdentityKey)) return { drop: 'sender_binding' };
  const content = result.kind === 'application' ? tryDecodeContent(result.plaintext) : undefined;
  let next: SessionRecord = {
    ...session,
    initiatedUnconfirmed: false,
    unconfirmedOutgoing: [],
    updatedAt: now,
  };
  if (result.kind === 'commit') next = await withNewEpoch(ctx, next, result.state);
  if (result.kind === 'application') {
    next.messagesSinceCommit += 1;
    delete next.unusedSince;
  }
  return {
    kind: result.kind,
    state: result.state,
    next,
    consumed: result.consumed,
    ...(content && {
      received: {
        from: sender,
        conversation: { kind: 'direct', id: sender, groupId: session.groupId },
        content,
        receivedAt: now,
      },
    }),
  };
}
