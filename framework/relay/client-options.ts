/**
 * What RelayClient takes and emits: its options (store, broker, limits, the clock and random source
 * tests substitute) and its typed events.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { DropReason } from './drops.js';
import type { Duties } from './duties.js';
import type { GroupEvent, GroupOptions } from './group-types.js';
import type { LeaseStore } from './lease-store.js';
import type { ReceivedMessage } from './handler.js';
import { brokerClientId } from './broker-client-id.js';
import type { QuarantineNote } from './outbox-quarantine.js';
import type { SessionKeeper } from './session-claim.js';
import type { ReplicaMembership } from './replica-fence.js';
import type { Profile } from './profile.js';
import type { Random } from './random.js';
import type { RelayStore } from './store.js';
import type { SessionEvent } from './steps/direct-welcome.js';
import type { MqttTransportOptions, TransportTlsOptions } from './transport.js';
import type { WelcomeQuotaLimits } from './welcome-quota.js';

/** The events a RelayClient emits, with their payloads. */
export interface RelayClientEvents {
  message: (m: ReceivedMessage) => void;
  session: (s: SessionEvent) => void;
  /** Group membership: created, joined, members changed, rejoined, left (PROTOCOL.md §9). */
  group: (e: GroupEvent) => void;
  drop: (d: { reason: DropReason; topic: string }) => void;
  security: (e: { kind: 'sender_binding'; claimedSender: string }) => void;
  /** First contact mined a proof of work (for metrics). */
  pow: (p: { bits: number; seconds: number }) => void;
  /** An outbox row that can never be published was set aside, with its dependents (for metrics). */
  quarantine: (q: QuarantineNote) => void;
  error: (e: Error) => void;
}

/** How to reach the MQTT 5 broker: URL, credentials, TLS files, client id and session expiry. */
export interface BrokerOptions {
  url: string;
  /** CA, client certificate and key for mqtts:// and wss:// (passed to the transport as they are). */
  tls?: TransportTlsOptions;
  username?: string;
  password?: string;
  /** Defaults to one derived from the user id, so a restarted client resumes its MQTT session. */
  clientId?: string;
  /**
   * This process's slot among the replicas of one identity (0, 1, …; the same after a restart):
   * the default client id becomes `relay-<user id>-<slot>`. Not together with clientId.
   */
  replicaSlot?: number;
  /**
   * MQTT 5 shared subscription group for the inbox and group topics, so replicas of one identity
   * split its messages (broker-client-id.ts, transport-subscriptions.ts). Needs replicaSlot or
   * clientId, and a broker with shared subscriptions (Mosquitto, not the embedded broker).
   */
  shareGroup?: string;
  sessionExpirySeconds?: number;
  /**
   * MQTT keepalive in seconds (default 30): a dead link is noticed after about two of them, which
   * is what a replica's fenceAfterMs waits on before it fences itself.
   */
  keepaliveSeconds?: number;
}

/** What RelayClient.create() takes: the store, the broker, and the protocol limits. */
export interface RelayClientOptions {
  store: RelayStore;
  broker: BrokerOptions;
  topicPrefix?: string;
  /** Proof-of-work bits our inbox demands (published in our bundle). */
  powBits?: number;
  displayName?: string;
  /** Published with our bundle as key 7 (PROTOCOL.md §8); BotRuntime.profile gives a bot's. */
  profile?: Profile;
  clock?: Clock;
  /** Ids of outbox rows, messages and replies, and a new identity's keys; node:crypto's by default. */
  random?: Random;
  logger?: Logger;
  mlsProvider?: 'node' | 'default';
  maxEnvelopeBytes?: number;
  welcomeQuota?: WelcomeQuotaLimits;
  bundleFetchTimeoutMs?: number;
  /** Non-committers propose an Update after this many messages in one epoch (PROTOCOL.md §7). */
  updateEveryMessages?: number;
  /** Mining threads; 0 mines on the event loop in small slices. */
  powWorkers?: number;
  /** Invitation policy and limits for N-way groups. */
  groups?: GroupOptions;
  /**
   * A message whose handler holds back finished later messages this long is parked (stored and
   * acknowledged; parking.ts), so one slow conversation cannot stall the others. Default 300 ms;
   * only a head that blocks a near-full window and is an outlier is parked (transport-stall-rule.ts).
   */
  parkAfterMs?: number;
  /**
   * Which single-owner duties this process does (duties.ts): with replicas, a LeaseKeeper, so each
   * duty (DUTY: housekeeping, the bundle, dead replicas' outbox rows) has one owner among them.
   * Default: all of them (one process).
   */
  duties?: Duties;
  /** This process as one replica of several: outbox ownership and the replica duties' timing. */
  replica?: ReplicaOptions;
}

/**
 * What a replica tells its client (ARCHITECTURE.md "One identity, many processes"): who it is, and
 * where to find which replicas are alive. Without it, one process publishes every outbox row.
 */
export interface ReplicaOptions {
  /**
   * This replica's id in the registry (its LeaseKeeper's holder). Stamped on every outbox row it
   * commits: only it publishes them, and a restart under the same id publishes what it left.
   */
  replicaId: string;
  /**
   * The replica registry (the store's leases), to tell a dead replica's rows and broker session
   * (dead-replicas.ts); its slot leases tell a dead `replicaSlot: auto` replica's client id.
   */
  registry: Pick<LeaseStore, 'listReplicas' | 'listLeases'> &
    Partial<Pick<LeaseStore, 'acquireLease' | 'renewLease' | 'releaseLease'>>;
  /** A replica without a heartbeat this long is dead and its rows are claimed (default the lease ttl, 15 s). */
  staleAfterMs?: number;
  /** How often the owner of DUTY.outboxOrphans looks for dead replicas' rows (default 5 s). */
  orphanCheckMs?: number;
  /**
   * How often the owner of DUTY.bundle checks the bundle (default 30 s): a Welcome another replica
   * took consumes the published KeyPackage, and only the owner mints the next one.
   */
  bundleCheckMs?: number;
  /** How often the owner of DUTY.slotSessions looks for dead replicas' broker sessions (default 5 s). */
  slotCheckMs?: number;
  /** How often the stored groups are listed for ones another replica joined or left (default 2 s). */
  groupSyncMs?: number;
  /**
   * This replica's membership (its LeaseKeeper), which the client fences when the broker link has
   * been down for fenceAfterMs and rejoins when it is back (replica-fence.ts). Without it, a replica
   * cut off from the broker but not from the database keeps its duties and its outbox rows.
   */
  membership?: ReplicaMembership;
  /** How long the broker link must be down before this replica fences itself (default 60 s). */
  fenceAfterMs?: number;
  /**
   * The keeper (its LeaseKeeper) of this replica's session lease, the right to connect with its
   * client id (session-claim.ts): the client connects and reconnects only while it holds it, and
   * drains of other replicas' sessions take theirs first (needs the registry's acquireLease,
   * renewLease and releaseLease). Without it, a drain can take the session of a replica that is
   * alive but late with its heartbeat.
   */
  sessionKeeper?: SessionKeeper;
}

/** The transport's options for a client: the broker's, with the client id derived from our user id. */
export function transportOptions(
  broker: BrokerOptions,
  userIdHex: string,
  maxPayloadBytes: number,
): MqttTransportOptions {
  return {
    url: broker.url,
    clientId: brokerClientId(userIdHex, broker),
    ...(broker.shareGroup !== undefined ? { shareGroup: broker.shareGroup } : {}),
    ...(broker.username !== undefined ? { username: broker.username } : {}),
    ...(broker.password !== undefined ? { password: broker.password } : {}),
    ...(broker.sessionExpirySeconds !== undefined
      ? { sessionExpirySeconds: broker.sessionExpirySeconds }
      : {}),
    ...(broker.keepaliveSeconds !== undefined ? { keepaliveSeconds: broker.keepaliveSeconds } : {}),
    maxPayloadBytes,
    ...(broker.tls !== undefined ? { tls: broker.tls } : {}),
  };
}
