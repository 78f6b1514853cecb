/**
 * Typing indicators (PROTOCOL.md §8): a sender sends at most one per 3 s per conversation, and a
 * `start` lapses after 10 s unless repeated. The limiter is per runtime (no process-wide state).
 */
import { ConfigError } from '../relay/errors.js';

/** §8: at most one typing message per 3 s per conversation. */
export const TYPING_MIN_INTERVAL_MS = 3_000;
/** Automatic typing starts when a handler has run this long. */
export const DEFAULT_TYPING_AFTER_MS = 1_000;
/** …and is repeated this often while it runs (a `start` lapses after 10 s). */
export const DEFAULT_TYPING_EVERY_MS = 5_000;

/** Automatic typing while a handler runs; `false` turns it off (@Bot or BotRuntime option). */
export type TypingOption = false | { afterMs?: number; everyMs?: number };

/** Resolved automatic typing: when it starts and how often it repeats, or off. */
export type TypingPlan = false | { readonly afterMs: number; readonly everyMs: number };

export function resolveTyping(option: TypingOption | undefined): TypingPlan {
  if (option === false) return false;
  const afterMs = option?.afterMs ?? DEFAULT_TYPING_AFTER_MS;
  const everyMs = option?.everyMs ?? DEFAULT_TYPING_EVERY_MS;
  for (const [name, v] of [
    ['afterMs', afterMs],
    ['everyMs', everyMs],
  ] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new ConfigError(`typing.${name} must be a positive whole number of milliseconds, got ${v}`);
    }
  }
  if (everyMs < TYPING_MIN_INTERVAL_MS) {
    throw new ConfigError(`typing.everyMs must be at least ${TYPING_MIN_INTERVAL_MS} (PROTOCOL.md §8)`);
  }
  return { afterMs, everyMs };
}

/** Admits at most one typing message per conversation per TYPING_MIN_INTERVAL_MS. */
export class TypingLimiter {
  private readonly last = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** True (and counted) when a typing message may go to `conversationId` now. */
  take(conversationId: string): boolean {
    const now = this.now();
    const before = this.last.get(conversationId);
    if (before !== undefined && now - before < TYPING_MIN_INTERVAL_MS) return false;
    this.last.set(conversationId, now);
    if (this.last.size > 1024) this.prune(now);
    return true;
  }

  private prune(now: number): void {
    for (const [id, at] of this.last) if (now - at >= TYPING_MIN_INTERVAL_MS) this.last.delete(id);
  }
}
