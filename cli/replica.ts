/**
 * `relay-bot start` as one replica of several (broker.shareGroup, ARCHITECTURE.md "One identity,
 * many processes"): a LeaseKeeper on the store's leases takes the single-owner duties (DUTY) when
 * they are free, renews them, and releases them on shutdown so another replica takes over at once.
 * `replicaSlot: auto` (docker compose --scale, where containers share one environment) claims the
 * lowest free slot with a lease of its own, held as long as the process runs.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  claimFixedSlot,
  DEFAULT_LEASE_TTL_MS,
  DUTY,
  holderBase,
  LeaseKeeper,
  processHolder,
  replicaSlotLease,
  slotOfLease,
  slotOfReplica,
  type LeaseKeeperOptions,
  type LeaseRecord,
  type LeaseStore,
  type ReplicaRecord,
} from '../framework/relay/index.js';
import type { RelayConfig } from './config.js';
import { CommandFailed } from './errors.js';

/** Slots `replicaSlot: auto` tries before giving up: far more replicas than one deployment runs. */
export const MAX_AUTO_SLOTS = 256;

/** The lease that reserves replica slot `n` for the replica holding it (replicaSlot: auto). */
export const slotLease = replicaSlotLease;

/**
 * This process's id in the registry and the holder of its leases: `<share group>/<slot>~<instance>`,
 * or `<share group>/<client id>~<instance>` when broker.clientId names the connection instead (a
 * random instance per process: processHolder, so two processes configured alike are told apart),
 * or, for `replicaSlot: auto` (the slot is not known yet), `<share group>/<host>-<random>`.
 * Undefined without a share group (one process).
 */
export function replicaIdOf(config: RelayConfig): string | undefined {
  const { shareGroup, replicaSlot, clientId } = config.broker;
  if (shareGroup === undefined) return undefined;
  if (replicaSlot === 'auto') return `${shareGroup}/${hostname()}-${randomBytes(4).toString('hex')}`;
  return processHolder(
    `${shareGroup}/${replicaSlot !== undefined ? String(replicaSlot) : (clientId ?? 'unnamed')}`,
  );
}

/** A started replica: its LeaseKeeper and, for `replicaSlot: auto`, the slot it claimed. */
export interface StartedReplica {
  keeper: LeaseKeeper;
  slot?: number;
  /**
   * What metrics, /healthz and the logs call it: `<share group>/<slot>` (or `/<client id>`) once the
   * slot is known, without the process instance, so a restart keeps its metrics' label.
   */
  label: string;
}

/**
 * Starts this process as a replica: a LeaseKeeper wanting every framework duty (DUTY), with its
 * ownership changes logged, once it holds its slot: a fixed slot taken from a dead holder after its
 * lease lapsed, or refused with ReplicaSlotTaken when a live process holds it (slot-claim.ts), or
 * for `replicaSlot: auto` the lowest free slot claimed. Undefined for a single process, which owns
 * every duty without leases. Call keeper.stop() on shutdown.
 */
export async function startReplica(
  config: RelayConfig,
  leases: LeaseStore,
  log: Logger,
  opts: Pick<LeaseKeeperOptions, 'ttlMs' | 'renewEveryMs'> = {},
): Promise<StartedReplica | undefined> {
  const replicaId = replicaIdOf(config);
  if (replicaId === undefined) return undefined;
  const keeper = new LeaseKeeper({
    store: leases,
    replica: { replicaId, host: hostname(), pid: process.pid },
    ...opts,
  });
  keeper.on('acquired', (name) =>
    log.info({ replica: replicaId, lease: name }, 'lease acquired: this replica does it now'),
  );
  keeper.on('lost', (name, reason) => {
    if (name.startsWith('replica-slot/') && reason !== 'released')
      void slotLost(leases, log, {
        replicaId,
        lease: name,
        reason,
        auto: config.broker.replicaSlot === 'auto',
      });
    else log.info({ replica: replicaId, lease: name, reason }, 'lease lost');
  });
  keeper.on('error', (err) => log.warn({ err, replica: replicaId }, 'lease store call failed; retrying'));
  const fixed = config.broker.replicaSlot;
  const shareGroup = config.broker.shareGroup!;
  await keeper.start();
  try {
    // The slot first, the duties after: a process refused its slot has taken nothing from the
    // one running it. A fixed slot's lease is kept while fenced too: doctor tells a fenced replica
    // (stale heartbeat, live slot lease) from a stopped one by it (fencedReplicas).
    let slot: number | undefined;
    if (typeof fixed === 'number') {
      await claimFixedSlot({ keeper, leases, slot: fixed, log });
      await forgetEarlierRuns(leases, { shareGroup, slot: fixed, self: replicaId, ttlMs: opts.ttlMs }).catch(
        (err: unknown) =>
          log.warn(
            { err, replica: replicaId },
            "could not remove this slot's earlier runs from the registry",
          ),
      );
    } else if (fixed === 'auto') {
      slot = await claimSlot(keeper);
      log.info({ replica: replicaId, slot }, 'replica slot claimed');
    }
    for (const duty of Object.values(DUTY)) keeper.want(duty);
    await keeper.renewNow();
    const label = slot !== undefined ? `${shareGroup}/${slot}` : holderBase(replicaId);
    return { keeper, ...(slot !== undefined ? { slot } : {}), label };
  } catch (e) {
    await keeper.stop();
    throw e;
  }
}

/**
 * Removes the registry rows of this fixed slot's earlier runs (killed without a graceful stop,
 * or written under the slot's bare name by releases before per-process holders) once this process
 * holds the slot: their heartbeat is stale by then (their slot lease lapsed after their last
 * one). Without a row they count as dead at once (dead-replicas.ts), so their outbox rows, open
 * replies and tasks are taken over on the next sweep, and no restart leaves a stale row behind.
 */
async function forgetEarlierRuns(
  leases: Pick<LeaseStore, 'listReplicas' | 'removeReplica'>,
  run: { shareGroup: string; slot: number; self: string; ttlMs?: number | undefined },
): Promise<void> {
  const replicas = await leases.listReplicas(run.ttlMs ?? DEFAULT_LEASE_TTL_MS);
  for (const r of replicas)
    if (!r.live && r.replicaId !== run.self && slotOfReplica(run.shareGroup, r.replicaId) === run.slot)
      await leases.removeReplica(r.replicaId);
}

/**
 * Logs a lost slot lease for what it is. The keeper goes on wanting it, so a lease that merely
 * lapsed (renewals too late: a slow database, a paused process) is taken back on the next round.
 * Only when another holder took it does this process need a restart, since its slot is its MQTT
 * client id: for a fixed slot that is two replicas configured with one slot (or an auto replica
 * that claimed it meanwhile); for an auto one, another auto replica claimed it.
 */
async function slotLost(
  leases: Pick<LeaseStore, 'listLeases'>,
  log: Logger,
  lost: { replicaId: string; lease: string; reason: string; auto: boolean },
): Promise<void> {
  const { replicaId, lease, reason, auto } = lost;
  const fields = { replica: replicaId, lease, reason };
  let holder: string | undefined;
  try {
    holder = (await leases.listLeases()).find(
      (l) => l.name === lease && l.live && l.holder !== replicaId,
    )?.holder;
  } catch {
    // The database does not answer: the keeper's next round takes the lease back once it does.
  }
  if (holder === undefined) {
    log.warn(
      fields,
      "this replica's slot lease lapsed (renewed too late); it is taken back on the next renewal round",
    );
  } else if (auto) {
    log.error(
      { ...fields, holder },
      `${holder} claimed this replica's slot while it could not renew it; both now use one MQTT client id. Fix: restart this replica (it claims a free slot as it starts)`,
    );
  } else {
    log.error(
      { ...fields, holder },
      `${holder} holds this replica's slot: two replicas configured with one slot (broker.replicaSlot), or a replicaSlot: auto one claimed it while this one could not renew it. Fix: give each replica its own broker.replicaSlot (or use replicaSlot: auto for all), then restart this one`,
    );
  }
}

/**
 * A graceful stop's first step: gives up every framework duty at once, so another replica takes
 * them over, while the replica stays registered (and keeps its slot) until keeper.stop(). Until
 * then no replica takes this one's outbox rows for a dead replica's (outbox-orphans.ts): its client
 * publishes them itself as it stops.
 */
export async function releaseDuties(keeper: LeaseKeeper | undefined): Promise<void> {
  for (const duty of Object.values(DUTY)) await keeper?.drop(duty);
}

/** The lowest slot whose lease this keeper can take (and then keeps renewing). */
async function claimSlot(keeper: LeaseKeeper): Promise<number> {
  for (let n = 0; n < MAX_AUTO_SLOTS; n++) {
    // Kept while fenced (replica-fence.ts): the slot is this process's MQTT client id and session.
    keeper.want(slotLease(n), { keepWhileFenced: true });
    await keeper.renewNow();
    if (keeper.owns(slotLease(n))) return n;
    await keeper.drop(slotLease(n));
  }
  throw new CommandFailed(
    `no free replica slot among the first ${MAX_AUTO_SLOTS} (or the database did not answer). Fix: check the database, or stop replicas (relay-bot doctor lists them)`,
  );
}

/**
 * One line for `relay-bot doctor`: the live replicas, each with where it runs and the live leases
 * it holds, and how many registered ones stopped sending heartbeats.
 */
export function describeReplicas(replicas: readonly ReplicaRecord[], leases: readonly LeaseRecord[]): string {
  const live = replicas.filter((r) => r.live);
  const fenced = fencedReplicas(replicas, leases).length;
  const stale = replicas.length - live.length - fenced;
  const parts = live.map((r) => {
    const held = leases.filter((l) => l.live && l.holder === r.replicaId).map((l) => l.name);
    const where = [r.host, r.pid !== undefined ? `pid ${r.pid}` : undefined].filter(Boolean).join(' ');
    return `${r.replicaId}${where ? ` (${where})` : ''}${held.length > 0 ? ` holds ${held.sort().join(', ')}` : ''}`;
  });
  const head = `${live.length} live${live.length > 0 ? `: ${parts.join('; ')}` : ''}`;
  const withFenced = fenced > 0 ? `${head}; ${fenced} fenced` : head;
  return stale > 0
    ? `${withFenced}; ${stale} without a recent heartbeat (stopped or unreachable)`
    : withFenced;
}

/**
 * The replicas that fenced themselves (LeaseKeeper.fence(): broker link down past
 * replica.fenceAfterMs): they stop their heartbeat but keep renewing the leases they keep while
 * fenced (their replica slot's, fixed or auto), so they are the stale ones still holding a live
 * lease. A replica named by broker.clientId holds no slot lease and looks like a stopped one.
 */
export function fencedReplicas(
  replicas: readonly ReplicaRecord[],
  leases: readonly LeaseRecord[],
): ReplicaRecord[] {
  return replicas.filter((r) => !r.live && leases.some((l) => l.live && l.holder === r.replicaId));
}

/** `relay-bot doctor`'s line on the fenced replicas, or undefined when there are none. */
export function describeFenced(
  replicas: readonly ReplicaRecord[],
  leases: readonly LeaseRecord[],
): string | undefined {
  const fenced = fencedReplicas(replicas, leases);
  if (fenced.length === 0) return undefined;
  const names = fenced.map((r) => `${r.replicaId}${r.host !== undefined ? ` (${r.host})` : ''}`).join(', ');
  return `${names}: cut off from the broker (no heartbeat, yet still renewing its slot in the database), so it does no duties and takes no messages until its broker link is back. Fix: check that replica's network path to the broker (broker.url), or restart it`;
}

/**
 * `relay-bot doctor`'s line on processes that share one replica slot, or undefined when none do:
 * live replicas whose ids name one fixed slot (`<share group>/<slot>~<instance>`), or that hold one
 * slot's lease (an auto replica), besides another. They take the slot's MQTT session from each
 * other; a release with per-process holders refuses the second one's start (slot-claim.ts), so
 * this shows an older release, or a slot lost and taken while its process was paused.
 */
export function describeSharedSlots(
  replicas: readonly ReplicaRecord[],
  leases: readonly LeaseRecord[],
): string | undefined {
  const bySlot = new Map<string, ReplicaRecord[]>();
  for (const r of replicas.filter((x) => x.live)) {
    const group = r.replicaId.slice(0, Math.max(0, r.replicaId.indexOf('/')));
    const named = slotOfReplica(group, r.replicaId);
    const leased = leases
      .filter((l) => l.live && l.holder === r.replicaId)
      .map((l) => slotOfLease(l.name))
      .find((n) => n !== undefined);
    const slot = named ?? leased;
    if (slot === undefined) continue;
    const key = `${group}/${slot}`;
    bySlot.set(key, [...(bySlot.get(key) ?? []), r]);
  }
  const shared = [...bySlot].filter(([, rs]) => rs.length > 1);
  if (shared.length === 0) return undefined;
  const where = (r: ReplicaRecord) =>
    [r.host, r.pid !== undefined ? `pid ${r.pid}` : undefined].filter(Boolean).join(' ');
  const lines = shared.map(
    ([slot, rs]) =>
      `${rs.length} processes run replica slot ${slot}: ${rs.map((r) => `${r.replicaId}${where(r) ? ` (${where(r)})` : ''}`).join(', ')}`,
  );
  return `${lines.join('; ')}. They take the slot's MQTT session from each other. Fix: give each replica its own broker.replicaSlot, or use replicaSlot: auto, then restart them`;
}
