/**
 * `relay-bot start` as one replica of several (broker.shareGroup, ARCHITECTURE.md "One identity,
 * many processes"): a LeaseKeeper on the store's leases takes the single-owner duties (DUTY) when
 * they are free, renews them, and releases them on shutdown so another replica takes over at once.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  DUTY,
  LeaseKeeper,
  type LeaseRecord,
  type LeaseStore,
  type ReplicaRecord,
} from '../framework/relay/index.js';
import type { RelayConfig } from './config.js';

/**
 * This replica's id in the registry and the holder of its leases: `<share group>/<slot>`, or
 * `<share group>/<client id>` when broker.clientId names the connection instead. Undefined without
 * a share group (one process).
 */
export function replicaIdOf(config: RelayConfig): string | undefined {
  const { shareGroup, replicaSlot, clientId } = config.broker;
  if (shareGroup === undefined) return undefined;
  return `${shareGroup}/${replicaSlot !== undefined ? String(replicaSlot) : (clientId ?? 'unnamed')}`;
}

/**
 * The LeaseKeeper of a replica, wanting every framework duty, with its ownership changes logged;
 * not started. Undefined for a single process, which owns every duty without leases.
 */
export function replicaLeaseKeeper(
  config: RelayConfig,
  leases: LeaseStore,
  log: Logger,
): LeaseKeeper | undefined {
  const replicaId = replicaIdOf(config);
  if (replicaId === undefined) return undefined;
  const keeper = new LeaseKeeper({
    store: leases,
    replica: { replicaId, host: hostname(), pid: process.pid },
  });
  for (const duty of Object.values(DUTY)) keeper.want(duty);
  keeper.on('acquired', (name) =>
    log.info({ replica: replicaId, lease: name }, 'lease acquired: this replica does it now'),
  );
  keeper.on('lost', (name, reason) => log.info({ replica: replicaId, lease: name, reason }, 'lease lost'));
  keeper.on('error', (err) => log.warn({ err, replica: replicaId }, 'lease store call failed; retrying'));
  return keeper;
}

/**
 * One line for `relay-bot doctor`: the live replicas, each with where it runs and the live leases
 * it holds, and how many registered ones stopped sending heartbeats.
 */
export function describeReplicas(replicas: readonly ReplicaRecord[], leases: readonly LeaseRecord[]): string {
  const live = replicas.filter((r) => r.live);
  const stale = replicas.length - live.length;
  const parts = live.map((r) => {
    const held = leases.filter((l) => l.live && l.holder === r.replicaId).map((l) => l.name);
    const where = [r.host, r.pid !== undefined ? `pid ${r.pid}` : undefined].filter(Boolean).join(' ');
    return `${r.replicaId}${where ? ` (${where})` : ''}${held.length > 0 ? ` holds ${held.sort().join(', ')}` : ''}`;
  });
  const head = `${live.length} live${live.length > 0 ? `: ${parts.join('; ')}` : ''}`;
  return stale > 0 ? `${head}; ${stale} without a recent heartbeat (stopped or unreachable)` : head;
}
