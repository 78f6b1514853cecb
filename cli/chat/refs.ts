/**
 * Short local references for messages: every message the chat shows or sends gets a number, printed
 * as `(n)`, so /react, /edit, /delete, /choose and /cancel can name it. Message ids are the sender's
 * and only unique per sender and conversation, so an entry is found by (conversation, sender, id).
 * Bounded: the oldest entries are forgotten (their numbers then name nothing).
 */
import type { ContentAction, TaskState } from '../../framework/relay/index.js';
import type { Conversation } from './format.js';

/** How many messages keep their numbers; a long chat forgets the oldest. */
export const MAX_REFS = 2000;

/** What the chat remembers of one message it showed or sent. */
export interface MessageRef {
  n: number;
  conversation: Conversation;
  from: string;
  /** The sender's message id (`id` on the wire); absent when the message carried none. */
  id?: string;
  /** The text as last shown (after edits), for snippets in reaction and edit lines. */
  text: string;
  /** An actions message: its buttons, for /choose. */
  actions?: readonly ContentAction[];
  /** A task: its last state, for /cancel. */
  task?: TaskState;
  deleted?: boolean;
  /** A stream: still being written, or its final text was shown. */
  stream?: 'open' | 'done';
}

const conversationKey = (c: Conversation): string => `${c.kind}:${c.id}`;
const idKey = (c: Conversation, from: string, id: string): string => `${conversationKey(c)}|${from}|${id}`;

export class MessageRefs {
  private next = 1;
  private readonly byNumber = new Map<number, MessageRef>();
  private readonly byId = new Map<string, MessageRef>();

  constructor(private readonly max = MAX_REFS) {}

  /** Numbers a new message (or returns the entry it already has: a final text ending a stream). */
  add(entry: Omit<MessageRef, 'n'>): MessageRef {
    const known = entry.id === undefined ? undefined : this.find(entry.conversation, entry.from, entry.id);
    if (known) return known;
    const ref: MessageRef = { ...entry, n: this.next++ };
    this.byNumber.set(ref.n, ref);
    if (ref.id !== undefined) this.byId.set(idKey(ref.conversation, ref.from, ref.id), ref);
    this.evict();
    return ref;
  }

  /** The message `from` sent with this id in this conversation. */
  find(c: Conversation, from: string, id: string): MessageRef | undefined {
    return this.byId.get(idKey(c, from, id));
  }

  /**
   * The message a reply_to names: reply_to carries only an id, so any sender's message with it in
   * the conversation (the sender's own first, as edits and deletes name their own).
   */
  target(c: Conversation, preferredFrom: string, id: string): MessageRef | undefined {
    const own = this.find(c, preferredFrom, id);
    if (own) return own;
    const prefix = `${conversationKey(c)}|`;
    for (const [key, ref] of this.byId) {
      if (key.startsWith(prefix) && ref.id === id) return ref;
    }
    return undefined;
  }

  get(n: number): MessageRef | undefined {
    return this.byNumber.get(n);
  }

  /** The newest message in the conversation that `pick` accepts. */
  latest(c: Conversation, pick: (r: MessageRef) => boolean): MessageRef | undefined {
    const key = conversationKey(c);
    let found: MessageRef | undefined;
    for (const ref of this.byNumber.values()) {
      if (conversationKey(ref.conversation) === key && pick(ref)) found = ref;
    }
    return found;
  }

  private evict(): void {
    while (this.byNumber.size > this.max) {
      const [oldest] = this.byNumber.values();
      if (!oldest) return;
      this.byNumber.delete(oldest.n);
      if (oldest.id !== undefined) this.byId.delete(idKey(oldest.conversation, oldest.from, oldest.id));
    }
  }
}
