/**
 * The transactional message handler (RelayClient.setMessageHandler) and the one place it runs. For
 * 1:1 and group messages alike the handler's replies, conversation data and group changes are
 * collected here; the caller encrypts the replies for its conversation and commits everything with
 * the message that caused it, so a crash keeps all of it or none.
 */
import type { UnixSeconds, UserIdHex } from './brand.js';
import { encodeContent, type AppContent, type ContentEncodeOptions, type ContentInput } from './content.js';
import { HandlerError } from './errors.js';
import { withIntent } from './group-policy.js';
import type { GroupIntent } from './group-meta.js';
import type {
  GroupChange,
  GroupReceivedMessage,
  HandlerData,
  HandlerTransaction,
  Reply,
} from './group-types.js';
import { userIdFromHex, userIdToHex } from './identity.js';

/**
 * A verified application message from a 1:1 session: `conversation.id` is the peer's user id, `groupId` the
 * hex id of the session's MLS group.
 */
export interface DirectReceivedMessage {
  from: UserIdHex;
  conversation: { kind: 'direct'; id: UserIdHex; groupId: string };
  content: AppContent;
  receivedAt: UnixSeconds;
}

/** A verified application message, from a 1:1 session or a group (`conversation.kind`). */
export type ReceivedMessage = DirectReceivedMessage | GroupReceivedMessage;

/** Replies a handler asks for; committed with the message that caused them. */
export type ReplyFn = (reply: string | Reply) => void;

/**
 * The bot's message handler (RelayClient.setMessageHandler): runs before the message is committed, and
 * its replies and `tx` writes are committed with it, so a crash keeps all of them or none. If it throws,
 * the error goes to the client's error event and what it asked for so far is still committed.
 */
export type TransactionalHandler = (
  message: ReceivedMessage,
  reply: ReplyFn,
  tx: HandlerTransaction,
) => Promise<void> | void;

/** The membership changes one handler run asked for, by group. */
export class GroupChanges {
  private readonly byGroup = new Map<string, GroupIntent[]>();

  add(groupId: string, change: GroupChange): void {
    let intents = this.byGroup.get(groupId) ?? [];
    if (change.kind === 'leave') intents = withIntent(intents, { kind: 'leave' });
    else {
      for (const u of change.userIds) {
        intents = withIntent(intents, { kind: change.kind, userId: userIdToHex(userIdFromHex(u)) });
      }
    }
    this.byGroup.set(groupId, intents);
  }

  get size(): number {
    return this.byGroup.size;
  }

  entries(): IterableIterator<[string, GroupIntent[]]> {
    return this.byGroup.entries();
  }
}

/** What one handler run asked to commit with its message. */
export interface HandlerRun {
  replies: Reply[];
  conversationData: HandlerData;
  changes: GroupChanges;
}

/**
 * Runs the handler with a transaction over `loadStored`. A handler that throws is reported through
 * `onError`; what it asked for before throwing is still committed, as the message itself is.
 */
export async function runHandler(
  handler: TransactionalHandler,
  message: ReceivedMessage,
  loadStored: (conversationId: string) => Promise<string | undefined>,
  onError: (e: Error) => void,
): Promise<HandlerRun> {
  const replies: Reply[] = [];
  const data = new Map<string, string>();
  const changes = new GroupChanges();
  const tx: HandlerTransaction = {
    loadData: async (id) => data.get(id) ?? (await loadStored(id)),
    saveData: (id, json) => void data.set(id, json),
    groupChange: (groupId, change) => changes.add(groupId, change),
  };
  try {
    await handler(message, (r) => replies.push(typeof r === 'string' ? { content: r } : r), tx);
  } catch (e) {
    onError(new HandlerError('message handler failed', { cause: e }));
  }
  const conversationData = [...data].map(([conversationId, json]) => ({ conversationId, json }));
  return { replies, conversationData, changes };
}

/**
 * A reply's content: its own `id` when the handler gave one (the bot layer hands ids out so that
 * ctx.reply() can return them), else the fresh `id`; reply_to the message it answers unless set.
 */
export function replyContent(
  reply: Reply,
  answered: AppContent,
  id: string,
  options: ContentEncodeOptions = {},
): Uint8Array {
  const replyTo = reply.replyTo ?? answered.id;
  return encodeContent(
    { ...reply, id: reply.id ?? id, ...(replyTo !== undefined ? { replyTo } : {}) } as ContentInput,
    options,
  );
}
