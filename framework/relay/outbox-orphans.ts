/**
 * A dead replica's committed-but-unpublished outbox rows (issue 13; ARCHITECTURE.md "One identity,
 * many processes"). Each replica publishes only the rows it committed (OutboxRecord.replica), so a
 * replica that dies between commit and publish leaves rows nobody else would send. The owner of
 * DUTY.outboxOrphans looks for them on a timer: a row's replica is dead when the registry has no
 * live entry for it (dead-replicas.ts: no heartbeat within staleAfterMs, or no row at all after a
 * graceful stop, or fenced: replica-fence.ts). It
 * claims them with one atomic UPDATE (RelayStore.claimOutbox), after which they are its own rows,
 * and its publisher's read-back sends them in commit order under the same barrier, dependsOn and
 * quarantine rules as every other row.
 *
 * A replica restarted on its slot runs under a new id (one per process: cli/replica.ts), and once
 * it holds the slot it removes its dead predecessor's registry row, so those rows go out by the
 * next sweep; a process started under an id it had before gets its rows back by its own read-back.
 * One that comes back just as its rows are claimed, or that lost the database but not the broker,
 * may publish a row the claimer publishes too: receivers drop the copy (replay cache, processed
 * digests), as they do for a row a crash left behind between publish and delete.
 */
import { PeriodicSweep } from './periodic-sweep.js';
import type { Logger } from 'pino';
import { isDeadIn, type DeadReplicas } from './dead-replicas.js';
import type { ReplicaRecord } from './lease-store.js';
import type { RelayStore } from './store.js';

/** Default spacing of the owner's sweeps. */
export const DEFAULT_ORPHAN_CHECK_MS = 5_000;

export interface OutboxOrphansDeps {
  store: Pick<RelayStore, 'listOutboxOwners' | 'claimOutbox'>;
  /** Who is dead, by the replica registry. */
  dead: Pick<DeadReplicas, 'read'>;
  /** This replica's id: the claimed rows become its own. */
  replica: string;
  /** Whether this replica owns DUTY.outboxOrphans now. */
  owns(): boolean;
  /** Publishes this replica's rows from the store (the publisher's read-back). */
  publishClaimed(): Promise<void>;
  log: Logger;
}

/** The owners of outbox rows that are neither `self` nor a live replica of the registry. */
export function deadOwners(
  owners: readonly string[],
  replicas: readonly ReplicaRecord[],
  self: string,
): string[] {
  return owners.filter(isDeadIn(replicas, self));
}

/** Claims and publishes dead replicas' outbox rows while this replica owns the duty. */
export class OutboxOrphans {
  private readonly sweeper = new PeriodicSweep<number>(
    () => this.sweepOnce(),
    (e) => this.warn(e),
  );

  constructor(private readonly deps: OutboxOrphansDeps) {}

  /** Sweeps every `everyMs` until stop(); failures are logged and retried on the next sweep. */
  start(everyMs: number = DEFAULT_ORPHAN_CHECK_MS): void {
    this.sweeper.start(everyMs);
  }

  stop(): Promise<unknown> {
    return this.sweeper.stop();
  }

  /**
   * One sweep now (a sweep already running is joined): when this replica owns the duty, claims
   * every dead replica's rows and publishes them. Resolves to the number of rows claimed.
   */
  sweep(): Promise<number> {
    return this.sweeper.sweep();
  }

  private async sweepOnce(): Promise<number> {
    const d = this.deps;
    if (!d.owns()) return 0;
    const owners = await d.store.listOutboxOwners();
    if (owners.every((o) => o === d.replica)) return 0;
    const dead = owners.filter((await d.dead.read()).isDead);
    let claimed = 0;
    for (const owner of dead) {
      // Lost the lease meanwhile: the new owner claims the rest.
      if (!d.owns()) break;
      const moved = await d.store.claimOutbox(owner, d.replica);
      if (moved > 0)
        d.log.info({ from: owner, rows: moved }, "claimed a dead replica's unpublished outbox rows");
      claimed += moved;
    }
    if (claimed > 0) await d.publishClaimed();
    return claimed;
  }

  private warn(e: unknown): void {
    this.deps.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'outbox orphan sweep failed');
  }
}
