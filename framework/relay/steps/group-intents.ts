/**
 * Membership changes as intents in a group's bookkeeping (PROTOCOL.md §9): a handler's changes are
 * recorded with its message, proposals a commit did not carry are made again a bounded number of
 * times, and the stored intents say which calls carry them out.
 */
import type { UserIdHex } from '../brand.js';
import { withIntent } from '../group-policy.js';
import type { GroupIntent, GroupMeta } from '../group-meta.js';

/** How often an unfulfilled membership change is proposed again before we give up on it. */
export const MAX_INTENT_ATTEMPTS = 3;

/** Records intents in `meta`, each once. */
export function mergeIntents(meta: GroupMeta, intents: readonly GroupIntent[]): void {
  for (const intent of intents) meta.intents = withIntent(meta.intents, intent);
}

/** After a commit: what it did not fulfil is kept for another attempt, up to the bound. */
export function intentsAfterCommit(intents: readonly GroupIntent[]): GroupIntent[] {
  return intents
    .filter((i) => (i.attempts ?? 0) < MAX_INTENT_ATTEMPTS)
    .map((i) => ({ ...i, attempts: (i.attempts ?? 0) + 1 }));
}

/** The stored intents as the calls that carry them out: Adds, Removes, and our own leave last. */
export interface IntentWork {
  adds: UserIdHex[];
  removes: UserIdHex[];
  leave: boolean;
}

export function intentWork(intents: readonly GroupIntent[]): IntentWork {
  return {
    adds: intents.flatMap((i) => (i.kind === 'add' ? [i.userId] : [])),
    removes: intents.flatMap((i) => (i.kind === 'remove' ? [i.userId] : [])),
    leave: intents.some((i) => i.kind === 'leave'),
  };
}
