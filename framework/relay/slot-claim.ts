/**
 * A fixed replica slot taken as a process starts (issue 13; ARCHITECTURE.md "One identity, many
 * processes"). The slot is the MQTT client id, so two processes configured with one
 * `broker.replicaSlot` would take the broker session from each other (DISCONNECT 0x8E) back and
 * forth. Each process holds its leases under an id of its own (broker-client-id.ts processHolder),
 * so the slot's lease (`replica-slot/<n>`) tells who runs the slot.
 *
 * When another holder has a live lease on the slot, it is either a live process on the same slot
 * or one that died without a graceful stop (SIGKILL, a crash, a lost host), whose lease is still
 * unexpired. The two are told apart by waiting: a live holder renews its lease (every third of its
 * ttl), a dead one does not, and its lease lapses within one ttl. A renewal seen, or the slot taken
 * by yet another holder while we wait, means a live process: the start is refused with
 * ReplicaSlotTaken, before this process connects or takes any duty, so the running one is left
 * untouched. A lapse means a dead one: its slot is ours, as it was before holders were per process.
 */
import type { Logger } from 'pino';
import { replicaSlotLease } from './broker-client-id.js';
import { ConfigError } from './errors.js';
import type { LeaseRecord, LeaseStore } from './lease-store.js';

/** Another live process holds this process's fixed replica slot; the message names the fix. */
export class ReplicaSlotTaken extends ConfigError {
  constructor(
    /** The fixed slot this process is configured with (broker.replicaSlot). */
    readonly slot: number,
    /** The other process's holder id. */
    readonly holder: string,
    /** When it took the slot (store clock, ms since the epoch). */
    readonly since: number,
  ) {
    super(
      `another process runs replica slot ${slot} (holder ${holder}, since ${new Date(since).toISOString()}): give each replica its own broker.replicaSlot, or use replicaSlot: auto`,
    );
  }
}

/** The parts of a LeaseKeeper a slot claim uses. */
export interface SlotClaimKeeper {
  /** This process's holder id (processHolder). */
  readonly holder: string;
  /** Adds a lease to take and renew. */
  want(name: string, options?: { keepWhileFenced?: boolean }): void;
  /** Whether the lease is ours now. */
  owns(name: string): boolean;
  /** One renewal round (takes what is free). */
  renewNow(): Promise<void>;
}

/** What claimFixedSlot needs. */
export interface SlotClaimDeps {
  /** This process's keeper, started (registered), wanting no duty yet. */
  keeper: SlotClaimKeeper;
  /** Where the slot's lease is read while another holder has it. */
  leases: Pick<LeaseStore, 'listLeases'>;
  /** The fixed slot (broker.replicaSlot). */
  slot: number;
  /** Where the wait and the take-over are logged. */
  log: Logger;
  /** How often the slot's lease is read while another holder has it (default 500 ms). */
  pollMs?: number;
}

/**
 * Takes the fixed slot's lease for `keeper` (kept while fenced: it is the process's client id),
 * waiting out a dead holder's lease; throws ReplicaSlotTaken when a live process holds it.
 */
export async function claimFixedSlot(deps: SlotClaimDeps): Promise<void> {
  const { keeper, leases, slot, log } = deps;
  const name = replicaSlotLease(slot);
  keeper.want(name, { keepWhileFenced: true });
  let first: LeaseRecord | undefined;
  for (;;) {
    await keeper.renewNow();
    if (keeper.owns(name)) {
      if (first)
        log.info(
          { slot, previous: first.holder },
          'the replica slot lease lapsed unrenewed: slot taken over',
        );
      return;
    }
    const lease = (await leases.listLeases()).find((l) => l.name === name);
    // Free, or lapsed since the round: the next round takes it.
    if (lease && lease.live && lease.holder !== keeper.holder) {
      if (!first) {
        first = lease;
        log.warn(
          { slot, holder: lease.holder, since: iso(lease.acquiredAt), expires: iso(lease.expiresAt) },
          `replica slot ${slot} is held by ${lease.holder}: waiting for its lease to lapse (until ${iso(lease.expiresAt)} at most). A process stopped without a graceful shutdown (SIGKILL, a crash) leaves it held until then; if it is renewed meanwhile, another process runs this slot and this one refuses to start`,
        );
      } else if (lease.holder !== first.holder || lease.expiresAt > first.expiresAt) {
        throw new ReplicaSlotTaken(slot, lease.holder, lease.acquiredAt);
      }
    }
    // Not unref'd: while a process starts, this wait may be all that keeps it running.
    await new Promise((r) => setTimeout(r, deps.pollMs ?? DEFAULT_POLL_MS));
  }
}

const DEFAULT_POLL_MS = 500;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
