import { KindCounters } from './kind-counters.js';

/**
 * WORK_COUNTERS: counts of the work a message may cost beyond its own crypto, per process: what the decoded-state
 * cache saved or not, saves that lost a race with another replica, and access-index reloads. With
 * replicas of one identity (issue #13) these tell where the CPU per command goes, since each replica
 * sees only a share of a conversation's messages. Exported as metrics by `relay-bot start`.
 *
 * - `state_cache_hit`: a conversation's decoded state was the cached one of the stored version;
 * - `state_cache_stale`: the cache held an older version (another process wrote since);
 * - `state_cache_cold`: the cache held nothing for it;
 * - `state_epoch_reused`: of the misses, a group state whose epoch part was still the cached one's,
 *   so only its live part was decoded;
 * - `stale_commit`: a save found the stored version moved on (StaleStateError; the work is redone);
 * - `access_reload`: the access index was reloaded from the store (replicas only).
 */
export const WORK_COUNTERS = [
  'state_cache_hit',
  'state_cache_stale',
  'state_cache_cold',
  'state_epoch_reused',
  'stale_commit',
  'access_reload',
] as const;

/** One of WORK_COUNTERS. */
export type WorkCounter = (typeof WORK_COUNTERS)[number];

/** Per-kind counts of WORK_COUNTERS, all starting at 0 (RelayClient.work). */
export class WorkCounters extends KindCounters<WorkCounter> {
  constructor() {
    super(WORK_COUNTERS);
  }
}
