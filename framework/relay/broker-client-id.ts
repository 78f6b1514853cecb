/**
 * The MQTT client id a RelayClient connects with. The broker keeps the persistent session (queued
 * messages, subscriptions) under it, so it must be stable across restarts; and two connections
 * with one id take the session from each other, so every process of one identity (a replica,
 * ARCHITECTURE.md "One identity, many processes") needs its own, stable per replica slot.
 */
import { randomBytes } from 'node:crypto';
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

/** The lease that reserves replica slot `n` for the replica holding it (`replicaSlot: auto`). */
export function replicaSlotLease(n: number): string {
  return `${SLOT_LEASE_PREFIX}${n}`;
}

const SLOT_LEASE_PREFIX = 'replica-slot/';

/**
 * The lease that gives the right to connect with `clientId` now (session-claim.ts): the replica
 * whose client id it is holds it while it runs unfenced, a drain of its session (slot-sessions.ts)
 * holds it while it drains. Neither connects without it, so a drain never kicks a live replica
 * that can still renew its leases, and the replica never takes its session back mid-drain.
 */
export function sessionLease(clientId: string): string {
  return `${SESSION_LEASE_PREFIX}${clientId}`;
}

const SESSION_LEASE_PREFIX = 'mqtt-session/';

/** Whether `name` is a session lease (sessionLease): a reservation of a client id, not a duty. */
export function isSessionLease(name: string): boolean {
  return name.startsWith(SESSION_LEASE_PREFIX);
}

/** The slot a replicaSlotLease() name reserves, or undefined for any other name. */
export function slotOfLease(name: string): number | undefined {
  if (!name.startsWith(SLOT_LEASE_PREFIX)) return undefined;
  const rest = name.slice(SLOT_LEASE_PREFIX.length);
  return /^(0|[1-9][0-9]{0,8})$/.test(rest) ? Number(rest) : undefined;
}

/**
 * The holder id of one process (its registry id, the holder of its leases, the `replica` stamp of
 * its outbox rows): `base` (`<share group>/<slot>`, or `<share group>/<client id>`) with a random
 * instance suffix. Two processes configured with one fixed slot share the slot's MQTT client id,
 * but not this: their leases tell them apart (slot-claim.ts), where one holder name per slot let
 * each believe it held everything. Releases before the suffix wrote `base` alone: holderBase()
 * reads both.
 */
export function processHolder(base: string, instance: string = randomBytes(4).toString('hex')): string {
  if (!INSTANCE.test(`${INSTANCE_SEPARATOR}${instance}`))
    throw new ArgumentError(`a process instance is 8 lowercase hex digits, not ${JSON.stringify(instance)}`);
  return `${base}${INSTANCE_SEPARATOR}${instance}`;
}

const INSTANCE_SEPARATOR = '~';
const INSTANCE = /~[0-9a-f]{8}$/;

/** A holder id without its process instance (processHolder): what it names, in either format. */
export function holderBase(holder: string): string {
  return holder.replace(INSTANCE, '');
}

/**
 * The fixed slot a replica id of `shareGroup` names (`<share group>/<slot>`, with or without an
 * instance suffix), or undefined: another share group, a client id, or a `replicaSlot: auto` id
 * (whose slot only its slot lease tells).
 */
export function slotOfReplica(shareGroup: string, replicaId: string): number | undefined {
  const prefix = `${shareGroup}/`;
  if (!replicaId.startsWith(prefix)) return undefined;
  const rest = holderBase(replicaId).slice(prefix.length);
  return /^(0|[1-9][0-9]{0,8})$/.test(rest) ? Number(rest) : undefined;
}

/**
 * The client id a replica of this share group connected with, or undefined when it is not of this
 * share group: its slot's when known (`slot`, from the slot lease a `replicaSlot: auto` replica
 * held: dead-replicas.ts), else the one its id names (`<share group>/<slot>` or `<share group>/<client
 * id>`, either with a process instance suffix or, written by older releases, without: cli/replica.ts). An auto replica whose slot is not known yields its id's last part, a client
 * id never used (draining it finds no session).
 */
export function clientIdOfReplica(
  userIdHex: string,
  shareGroup: string,
  replica: { replicaId: string; slot?: number },
): string | undefined {
  const prefix = `${shareGroup}/`;
  const { replicaId, slot } = replica;
  if (!replicaId.startsWith(prefix)) return undefined;
  if (slot !== undefined) return brokerClientId(userIdHex, { replicaSlot: slot });
  const rest = holderBase(replicaId).slice(prefix.length);
  if (rest.length === 0) return undefined;
  return /^(0|[1-9][0-9]{0,8})$/.test(rest) ? brokerClientId(userIdHex, { replicaSlot: Number(rest) }) : rest;
}
