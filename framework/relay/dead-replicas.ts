/**
 * Who is dead among the replicas of one identity (issue 13): a replica is dead when the registry
 * has no live heartbeat for it, i.e. none within staleAfterMs, or no row at all after a graceful
 * stop. One reading of the registry, shared by the duties that take over after a dead replica:
 * outbox-orphans.ts (its committed-but-unpublished rows) and slot-sessions.ts (its broker session).
 *
 * A `replicaSlot: auto` replica's id does not name its slot (cli/replica.ts), so the reading adds
 * the slot from the `replica-slot/<n>` lease it held, live or expired: that is how its MQTT client
 * id is known after it died. A slot another replica took since is that replica's, and not told.
 */
import { slotOfLease } from './broker-client-id.js';
import type { LeaseStore, ReplicaRecord } from './lease-store.js';

/** A registered replica without a live heartbeat, with the replica slot it held, if it held one. */
export interface DeadReplica extends ReplicaRecord {
  slot?: number;
}

/** One reading of the registry. */
export interface RegistryReading {
  /** Registered replicas other than this one without a live heartbeat. */
  dead: DeadReplica[];
  /** Whether `replicaId` is not this replica and has no live heartbeat (or no row). */
  isDead(replicaId: string): boolean;
}

export interface DeadReplicasDeps {
  /** The registry; without listLeases, an auto replica's slot is not told. */
  registry: Pick<LeaseStore, 'listReplicas'> & Partial<Pick<LeaseStore, 'listLeases'>>;
  /** This replica's id: never dead to itself. */
  self: string;
  /** A registered replica without a heartbeat for this long is dead (the lease ttl is a good value). */
  staleAfterMs: number;
}

/** Whether `replicaId` is neither `self` nor a live replica of `replicas`. */
export function isDeadIn(replicas: readonly ReplicaRecord[], self: string): (replicaId: string) => boolean {
  const live = new Set(replicas.filter((r) => r.live).map((r) => r.replicaId));
  return (replicaId) => replicaId !== self && !live.has(replicaId);
}

/** Reads who is dead; see the module comment. */
export class DeadReplicas {
  constructor(private readonly deps: DeadReplicasDeps) {}

  /**
   * The registry now; `withSlots` also lists the slot leases, for the dead replicas' slots: only
   * when one is dead, so the periodic sweep of a healthy deployment costs one statement, not two
   * (issue 13: what an idle replica pays per second).
   */
  async read(withSlots = false): Promise<RegistryReading> {
    const { registry, self, staleAfterMs } = this.deps;
    const replicas = await registry.listReplicas(staleAfterMs);
    const isDead = isDeadIn(replicas, self);
    const deadRows = replicas.filter((r) => isDead(r.replicaId));
    const leases = withSlots && registry.listLeases && deadRows.length > 0 ? await registry.listLeases() : [];
    const slots = new Map<string, number>();
    for (const l of leases) {
      const slot = slotOfLease(l.name);
      if (slot !== undefined) slots.set(l.holder, slot);
    }
    const dead = deadRows.map((r) => {
      const slot = slots.get(r.replicaId);
      return slot === undefined ? r : { ...r, slot };
    });
    return { dead, isDead };
  }
}
