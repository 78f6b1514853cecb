/**
 * Duties that must have one owner among the replicas of one identity (ARCHITECTURE.md "One
 * identity, many processes"). A component asks `owns(name)` before doing one; a LeaseKeeper answers
 * from its leases, and a single process owns everything.
 *
 * What is NOT a duty, and why one owner holds anyway:
 * - Inbound processing, and everything it triggers (a committer's batch timer after a proposal
 *   arrived, the Update a member proposes after updateEveryMessages, a rejoin request, carrying
 *   out a handler's membership changes): it runs on the replica the broker handed the message to,
 *   and every write goes through the conversation row's compare-and-set (RelayStore.commit). Two
 *   replicas whose timers both fire for one group both try; one commit lands, the other fails as
 *   stale, retries on fresh state (retry-stale.ts) and finds nothing left to do, so a group never
 *   gets two commits for one epoch.
 * - API calls (send, createGroup, …): whoever calls them, under the same compare-and-set.
 * - Each replica's own outbox rows (OutboxRecord.replica): only their replica publishes them,
 *   until it is dead and the owner of DUTY.outboxOrphans claims them.
 */

/** Whether this process does a named duty now; LeaseKeeper is one. */
export interface Duties {
  /** Whether this process is the owner of the duty `name` (a DUTY value) now. */
  owns(name: string): boolean;
  /**
   * Optional: calls `fn` whenever this process becomes the owner of a duty, so it can act at once
   * instead of on its next timer (LeaseKeeper's `acquired` event).
   */
  on?(event: 'acquired', fn: (name: string) => void): unknown;
}

/** A single process: it owns every duty. The default wherever Duties are optional. */
export const SOLE_OWNER: Duties = { owns: () => true };

/** The lease names of the duties the framework gates. */
export const DUTY = {
  /** Sending due scheduled jobs (framework/bot/scheduler.ts): a job runs once. */
  scheduler: 'scheduler',
  /**
   * The client's periodic housekeeping (client.ts): pruning replay and dedupe records, expiring
   * unused sessions, and the time-driven group rules of §9 (a committer's 7-day key refresh in a
   * quiet group, a member's Update, replacing a committer that left proposals waiting 7 days).
   */
  housekeeping: 'housekeeping',
  /**
   * Our retained KeyBundle and its KeyPackages (bundles.ts, own-bundle.ts): minting a fresh bundle
   * (consumed or old KeyPackage, changed metadata), publishing it, re-publishing it when a foreign
   * payload or a lost broker session replaced it, and pruning private keys past their retention.
   * Only its owner writes or publishes the bundle, so replicas never overwrite each other's.
   */
  bundle: 'bundle',
  /**
   * Claiming the committed-but-unpublished outbox rows of dead replicas and publishing them
   * (outbox-orphans.ts).
   */
  outboxOrphans: 'outbox-orphans',
  /**
   * Draining the broker sessions of dead replicas (slot-sessions.ts): what the broker queued for a
   * dead slot is processed here, and the broker told to forget that share group member.
   */
  slotSessions: 'slot-sessions',
} as const;
