/**
 * The sender checks of PROTOCOL.md §8 over the store's sender index (MessageSenderRecord): edits,
 * deletes and stream parts count only from the MLS-authenticated sender of the message they name.
 * Pure except for checkContentSender's one indexed read; the entries a message adds are committed
 * with the message itself, so the index never runs ahead of or behind the conversation.
 *
 * The rules (docs/protocol.md "Content checks"):
 * - an edit or delete naming a message of another sender → `content_sender`; naming an id the index
 *   does not know (never seen here, or older than its bound) → `content_unknown_target`, since it
 *   cannot be shown to be the sender's own;
 * - a stream part whose `id` another sender started → `content_sender`; an unknown id opens the stream;
 * - any other content whose `id` another sender already used → `content_sender` (a final `text`
 *   would otherwise supersede someone else's stream);
 * - `typing` is ephemeral: never checked, never indexed.
 */
import type { UnixSeconds } from './brand.js';
import { isEphemeralContent, senderBoundTarget, type AppContent } from './content.js';
import type { DropReason } from './drops.js';
import type { MessageSenderRecord, RelayStore } from './store.js';

/**
 * What the checks read of content, sent (ContentInput, type "text" when absent) or received: its
 * type, its own id, and the reply_to an edit or delete names.
 */
type Checked = { type?: string; id?: string; replyTo?: string };

const asContent = (c: Checked): AppContent => ({ content: '', ...c, type: c.type ?? 'text' }) as AppContent;

const isEphemeral = (c: Checked): boolean => isEphemeralContent(asContent(c));

/** The message id whose sender must be this content's sender (edit, delete, stream), if any. */
const boundTarget = (c: Checked): string | undefined => senderBoundTarget(asContent(c));

/** The ids whose senders the checks need: the content's own id and the one it must own. */
export function idsToCheck(c: Checked): string[] {
  if (isEphemeral(c)) return [];
  const ids = new Set<string>();
  if (c.id) ids.add(c.id);
  const target = boundTarget(c);
  if (target) ids.add(target);
  return [...ids];
}

/**
 * Why content from `sender` must be dropped, given the senders the index knows (`owners`, by id),
 * or undefined when it counts.
 */
export function judgeContentSender(
  c: Checked,
  sender: string,
  owners: ReadonlyMap<string, string>,
): DropReason | undefined {
  if (isEphemeral(c)) return undefined;
  const target = boundTarget(c);
  if (target !== undefined && c.type !== 'stream') {
    const owner = owners.get(target);
    if (owner === undefined) return 'content_unknown_target';
    if (owner !== sender) return 'content_sender';
  }
  const ownId = c.id ? owners.get(c.id) : undefined;
  if (ownId !== undefined && ownId !== sender) return 'content_sender';
  return undefined;
}

/** Looks the ids up in the index of conversation `groupId` and judges (judgeContentSender). */
export async function checkContentSender(
  store: Pick<RelayStore, 'messageSenders'>,
  groupId: string,
  c: AppContent,
  sender: string,
): Promise<DropReason | undefined> {
  const ids = idsToCheck(c);
  if (ids.length === 0) return undefined;
  return judgeContentSender(c, sender, await store.messageSenders(groupId, ids));
}

/** The index entry a message adds: none for ephemeral content or content without an id. */
export function senderEntries(
  groupId: string,
  c: Checked,
  sender: string,
  at: UnixSeconds,
): MessageSenderRecord[] {
  if (isEphemeral(c) || !c.id) return [];
  return [{ groupId, messageId: c.id, sender, at }];
}
