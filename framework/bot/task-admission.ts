/**
 * Admitting task requests atomically across replicas. Each replica counts the committed task rows
 * plus its own submissions whose commit has not come yet; two replicas accepting at the same moment
 * would both count without the other's new row and could both pass the `tasks:` limits. So, with
 * replicas, the count-check-write of a submission runs under one lease per bot,
 * `task-admit:<bot>`, held from before the rows are listed until this replica's admitted rows are
 * committed (the request's commit event): another replica's count then always includes them.
 * Within one process the count is already atomic (the check and the pending entry happen with no
 * await between), so all of a process's submissions share the lease (one holder per process).
 */
import type { Logger } from 'pino';
import type { LeaseStore } from '../relay/lease-store.js';

/** What admission needs of the lease store (the registry's leases). */
export type AdmissionLeases = Pick<LeaseStore, 'acquireLease' | 'releaseLease'>;

/** How long the lease lasts if its holder dies before it is released (ms). */
const ADMIT_TTL_MS = 10_000;
/** How long a submission waits for another replica's admission before it is refused as busy (ms). */
const ADMIT_WAIT_MS = 5_000;

/** The registry's leases, when it has them (AttachReplica.registry is typed for less). */
export function admissionLeasesOf(
  registry: Partial<AdmissionLeases> | undefined,
): AdmissionLeases | undefined {
  const { acquireLease, releaseLease } = registry ?? {};
  return registry && acquireLease && releaseLease
    ? {
        acquireLease: (...a) => acquireLease.apply(registry, a),
        releaseLease: (...a) => releaseLease.apply(registry, a),
      }
    : undefined;
}

export const taskAdmitLeaseName = (bot: string): string => `task-admit:${bot}`;

/** The admission lease of one TaskManager; without leases (one process) every enter() succeeds. */
export class TaskAdmission {
  /** Submissions between enter() and done(): checking, or admitted and waiting for their commit. */
  private inside = 0;

  constructor(
    private readonly leases: AdmissionLeases | undefined,
    private readonly name: string,
    private readonly holder: string,
    private readonly log: Logger,
  ) {}

  /** Waits for the lease; false when another replica kept it past the wait (the caller refuses). */
  async enter(): Promise<boolean> {
    if (!this.leases) return true;
    this.inside++;
    const end = Date.now() + ADMIT_WAIT_MS;
    for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
      const held = await this.leases
        .acquireLease(this.name, this.holder, ADMIT_TTL_MS)
        .catch((err: unknown) => void this.log.warn({ err }, 'could not take the task admission lease'));
      if (held) return true;
      if (Date.now() + pause > end) {
        this.done();
        return false;
      }
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  /** Stopping: lets the lease go now rather than at its expiry (another replica may be waiting). */
  async close(): Promise<void> {
    if (!this.leases || this.inside === 0) return;
    this.inside = 0;
    await this.leases.releaseLease(this.name, this.holder).catch(() => false);
  }

  /** One submission is through (refused, or its commit came or lapsed): the last one releases. */
  done(): void {
    if (!this.leases || this.inside === 0) return;
    this.inside--;
    if (this.inside > 0) return;
    void this.leases
      .releaseLease(this.name, this.holder)
      .catch((err: unknown) => this.log.warn({ err }, 'could not release the task admission lease'));
  }
}
