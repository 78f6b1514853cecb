import { KindCounters } from './kind-counters.js';

/**
 * Why an input from the network was dropped. Each reason has its own counter; a drop is silent on
 * the wire and logged at debug level only (PROTOCOL.md §5, §10).
 */
export const DROP_REASONS = [
  'oversize',
  'codec',
  'sent_at',
  'replay',
  'pow',
  'access_session',
  'hpke',
  'inner_payload',
  'sender_binding',
  'unknown_session',
  'mls',
  'duplicate',
  'welcome_invalid',
  'welcome_replay',
  'welcome_quota',
  'welcome_superseded',
  'bundle_invalid',
  'content',
  // PROTOCOL.md §8 sender checks (content-senders.ts): an edit, delete or stream part naming a
  // message of another sender; an edit or delete naming a message the sender index does not know.
  'content_sender',
  'content_unknown_target',
  'unexpected_topic',
  'overload',
  // A delivery at QoS 0 on an inbox or group topic (PROTOCOL.md §3).
  'qos',
  // Groups (PROTOCOL.md §9)
  'group_payload',
  'unknown_group',
  'group_epoch_gap',
  'group_stale',
  'group_fork',
  'group_invite_refused',
  'group_too_large',
  'group_duplicate',
  'rejoin_invalid',
  'rejoin_quota',
  'rejoin_not_behind',
] as const;

/** One of DROP_REASONS: the counter a silently dropped network input is counted under. */
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * Per-reason counts of dropped network inputs, all reasons starting at 0; the only trace a drop leaves
 * besides a debug log line.
 */
export class DropCounters extends KindCounters<DropReason> {
  constructor() {
    super(DROP_REASONS);
  }
}
