/**
 * The MQTT client id a RelayClient connects with. The broker keeps the persistent session (queued
 * messages, subscriptions) under it, so it must be stable across restarts; and two connections
 * with one id take the session from each other, so every process of one identity (a replica,
 * ARCHITECTURE.md "One identity, many processes") needs its own, stable per replica slot.
 */
import { ArgumentError } from './errors.js';

/** The broker settings that choose the client id (a subset of the client's BrokerOptions). */
export interface ClientIdChoice {
  clientId?: string;
  replicaSlot?: number;
  shareGroup?: string;
}

/**
 * `clientId` when given; otherwise `relay-<user id>` (the default of a single process) or
 * `relay-<user id>-<replicaSlot>`. Throws ArgumentError naming the fix when the choice is ambiguous
 * or would let replicas of a share group take each other's session.
 */
export function brokerClientId(userIdHex: string, choice: ClientIdChoice): string {
  const { clientId, replicaSlot, shareGroup } = choice;
  if (replicaSlot !== undefined && (!Number.isSafeInteger(replicaSlot) || replicaSlot < 0)) {
    throw new ArgumentError(`broker.replicaSlot must be a non-negative integer, not ${replicaSlot}`);
  }
  if (clientId !== undefined) {
    if (replicaSlot !== undefined) {
      throw new ArgumentError('set broker.clientId or broker.replicaSlot, not both');
    }
    return clientId;
  }
  if (replicaSlot !== undefined) return `relay-${userIdHex}-${replicaSlot}`;
  if (shareGroup !== undefined) {
    throw new ArgumentError(
      'broker.shareGroup needs a client id of its own per process: set broker.replicaSlot ' +
        '(0, 1, 2, … one per replica, the same after a restart) or broker.clientId',
    );
  }
  return `relay-${userIdHex}`;
}

/**
 * The client id the replica `replicaId` (`<share group>/<slot>` or `<share group>/<client id>`,
 * cli/replica.ts) connected with, or undefined when it is not of this share group. A
 * `replicaSlot: auto` replica's id names no slot; the id it yields is then one that was never used
 * (draining it finds no session).
 */
export function clientIdOfReplica(
  userIdHex: string,
  shareGroup: string,
  replicaId: string,
): string | undefined {
  const prefix = `${shareGroup}/`;
  if (!replicaId.startsWith(prefix)) return undefined;
  const rest = replicaId.slice(prefix.length);
  if (rest.length === 0) return undefined;
  return /^(0|[1-9][0-9]{0,8})$/.test(rest) ? brokerClientId(userIdHex, { replicaSlot: Number(rest) }) : rest;
}
