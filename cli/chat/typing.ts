/**
 * Who is typing where (PROTOCOL.md §8 `typing`): a `start` holds for 10 s unless repeated; a `stop`,
 * any other message from the same sender in the same conversation, or the expiry clears it.
 * Ephemeral: nothing is stored, and the timers never keep the process alive.
 */
import type { Conversation } from './format.js';

/** How long a `start` holds without being repeated (§8). */
export const TYPING_LAPSE_MS = 10_000;

const key = (c: Conversation, from: string): string => `${c.kind}:${c.id}|${from}`;

export class TypingTracker {
  private readonly active = new Map<
    string,
    { conversation: Conversation; from: string; timer: NodeJS.Timeout }
  >();

  /** `changed` runs whenever someone starts or stops typing (the prompt shows it on a terminal). */
  constructor(
    private readonly changed: () => void,
    private readonly lapseMs = TYPING_LAPSE_MS,
  ) {}

  /** Returns true when `from` was not typing there before (a new notice worth a line). */
  start(conversation: Conversation, from: string): boolean {
    const k = key(conversation, from);
    const had = this.active.get(k);
    if (had) clearTimeout(had.timer);
    const timer = setTimeout(() => this.clear(conversation, from), this.lapseMs);
    timer.unref();
    this.active.set(k, { conversation, from, timer });
    if (!had) this.changed();
    return !had;
  }

  clear(conversation: Conversation, from: string): void {
    const k = key(conversation, from);
    const had = this.active.get(k);
    if (!had) return;
    clearTimeout(had.timer);
    this.active.delete(k);
    this.changed();
  }

  /** Who is typing in this conversation now. */
  typingIn(conversation: Conversation | undefined): string[] {
    if (!conversation) return [];
    const prefix = `${conversation.kind}:${conversation.id}|`;
    return [...this.active.entries()].filter(([k]) => k.startsWith(prefix)).map(([, v]) => v.from);
  }

  stop(): void {
    for (const v of this.active.values()) clearTimeout(v.timer);
    this.active.clear();
  }
}
