/**
 * Duties that must have one owner among the replicas of one identity (ARCHITECTURE.md "One
 * identity, many processes"): the scheduler's jobs, the client's housekeeping. A component asks
 * `owns(name)` before doing one; a LeaseKeeper answers from its leases, and a single process owns
 * everything.
 */

/** Whether this process does a named duty now; LeaseKeeper is one. */
export interface Duties {
  owns(name: string): boolean;
}

/** A single process: it owns every duty. The default wherever Duties are optional. */
export const SOLE_OWNER: Duties = { owns: () => true };

/** The lease names of the duties the framework gates. */
export const DUTY = {
  /** Sending due scheduled jobs (framework/bot/scheduler.ts). */
  scheduler: 'scheduler',
  /** The client's bundle refresh, key retention, session expiry and group rules (client.ts). */
  housekeeping: 'housekeeping',
} as const;
