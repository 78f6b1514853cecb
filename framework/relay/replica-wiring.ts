/**
 * What a RelayClient does only as one replica of several (ARCHITECTURE.md "One identity, many
 * processes"): the sweeps for dead replicas' outbox rows (outbox-orphans.ts) and broker sessions
 * (slot-sessions.ts), fencing the replica while the broker is unreachable (replica-fence.ts), the
 * timers that pick up groups and bundles another replica changed, acting at once on a duty just
 * taken over, and leaving the share group on a graceful stop. Apart from
 * client.ts so the client stays the wiring of one process.
 */
import type { Logger } from 'pino';
import { AccessRefresh, type InboundVia } from './access-refresh.js';
import { brokerClientId, clientIdOfReplica, sessionLease } from './broker-client-id.js';
import type { Bundles } from './bundles.js';
import { transportOptions, type BrokerOptions, type ReplicaOptions } from './client-options.js';
import { DeadReplicas } from './dead-replicas.js';
import type { DirectShell } from './direct-shell.js';
import { DUTY, type Duties } from './duties.js';
import type { GroupShell } from './group-shell.js';
import { DEFAULT_LEASE_TTL_MS } from './lease-keeper.js';
import { DEFAULT_ORPHAN_CHECK_MS, OutboxOrphans } from './outbox-orphans.js';
import type { OutboxPublisher } from './outbox-publisher.js';
import { DEFAULT_FENCE_AFTER_MS, ReplicaFence } from './replica-fence.js';
import {
  claimSession,
  DEFAULT_DRAIN_LIMIT_MS,
  DEFAULT_SLOT_CHECK_MS,
  SlotSessions,
} from './slot-sessions.js';
import { probeBroker, SessionClaim } from './session-claim.js';
import type { RelayStore } from './store.js';
import { MqttTransport, SESSION_TAKEN_OVER } from './transport.js';
import type { InboundMessage } from './transport-types.js';
import type { WorkCounters } from './work-counters.js';

/**
 * How often a replica lists the stored groups for ones another replica joined or left: one cheap
 * listing (summaries) per replica per interval.
 */
const DEFAULT_GROUP_SYNC_MS = 2_000;
/** How often the owner of DUTY.bundle checks for a KeyPackage another replica's Welcome consumed. */
const DEFAULT_BUNDLE_CHECK_MS = 30_000;

/** The parts of the client a replica's wiring uses. */
export interface ReplicaWiringDeps {
  replica: ReplicaOptions;
  broker: BrokerOptions;
  userId: string;
  maxEnvelopeBytes: number;
  duties: Duties;
  /** The store as given (not the client's outbox-checking wrapper): claims and listings only. */
  store: RelayStore;
  outbox: OutboxPublisher;
  transport: MqttTransport;
  bundles: Bundles;
  groups: GroupShell;
  /** The client's inbound path, for what a drained session holds. */
  receive(m: InboundMessage, via?: InboundVia): Promise<void>;
  fail(e: unknown): void;
  log: Logger;
}

/** One replica's share of the replica duties and timers; see the module comment. */
export class ReplicaWiring {
  /** Sweeper of dead replicas' outbox rows. */
  private readonly orphans: OutboxOrphans;
  /** Drainer of dead replicas' broker sessions; undefined without a share group. */
  private readonly slotSessions: SlotSessions | undefined;
  /** Fences this replica while the broker is unreachable; undefined without a membership. */
  private readonly fence: ReplicaFence | undefined;
  /** This replica's right to its client id; undefined without a share group or session keeper. */
  private readonly claim: SessionClaim | undefined;
  private running = false;
  private groupSyncTimer: NodeJS.Timeout | undefined;
  private bundleCheckTimer: NodeJS.Timeout | undefined;
  private readonly staleAfterMs: number;

  constructor(private readonly deps: ReplicaWiringDeps) {
    const { replica, duties, log } = deps;
    this.staleAfterMs = replica.staleAfterMs ?? DEFAULT_LEASE_TTL_MS;
    const dead = new DeadReplicas({
      registry: replica.registry,
      self: replica.replicaId,
      staleAfterMs: this.staleAfterMs,
    });
    this.orphans = new OutboxOrphans({
      store: deps.store,
      dead,
      replica: replica.replicaId,
      owns: () => duties.owns(DUTY.outboxOrphans),
      publishClaimed: () => deps.outbox.readBack(),
      log,
    });
    const shareGroup = deps.broker.shareGroup;
    const { registry } = replica;
    const { acquireLease, renewLease, releaseLease } = registry;
    const leases =
      acquireLease && renewLease && releaseLease
        ? {
            acquireLease: acquireLease.bind(registry),
            renewLease: renewLease.bind(registry),
            releaseLease: releaseLease.bind(registry),
          }
        : undefined;
    const ownOptions = transportOptions(deps.broker, deps.userId, deps.maxEnvelopeBytes);
    this.claim =
      shareGroup !== undefined && replica.sessionKeeper
        ? new SessionClaim({
            keeper: replica.sessionKeeper,
            lease: sessionLease(brokerClientId(deps.userId, deps.broker)),
            transport: deps.transport,
            log,
          })
        : undefined;
    this.slotSessions =
      shareGroup === undefined
        ? undefined
        : new SlotSessions({
            dead,
            owns: () => duties.owns(DUTY.slotSessions),
            clientIdOf: (r) => clientIdOfReplica(deps.userId, shareGroup, r),
            // The dead replica's session lease first: a live one means it is alive, only late.
            ...(leases
              ? {
                  claim: (clientId: string) =>
                    claimSession(leases, sessionLease(clientId), replica.replicaId, this.staleAfterMs),
                }
              : {}),
            // Never reconnecting: after a takeover by the slot's own replica, the drain just ends.
            open: (clientId) =>
              new MqttTransport({
                ...ownOptions,
                clientId,
                reconnectPeriodMs: 0,
              }),
            // Its own budget of envelopes waiting for an access reload (access-refresh.ts).
            receive: (m) => deps.receive(m, 'drain'),
            sharedFilters: () => deps.transport.sharedFilters(),
            log,
          });
    const membership = replica.membership;
    this.fence =
      membership &&
      new ReplicaFence({
        membership,
        fenceAfterMs: replica.fenceAfterMs ?? DEFAULT_FENCE_AFTER_MS,
        connected: () => deps.transport.connected,
        log,
        // Fenced, it gave its session lease up: a probe tells when the broker is back.
        ...(this.claim ? { probe: () => probeBroker(ownOptions, (o) => new MqttTransport(o)) } : {}),
      });
    // Only between start() and stop(): the first connect and the last disconnect are not news.
    deps.transport.on('close', () => this.running && this.fence?.linkDown());
    deps.transport.on('connect', () => this.running && this.fence?.linkUp());
    deps.transport.on('disconnect', ({ reasonCode }) => {
      if (reasonCode === SESSION_TAKEN_OVER)
        log.warn(
          { claimed: this.claim !== undefined },
          'broker session taken over by another connection with this client id (a drain, or a process with the same replica slot); reconnecting once this replica holds its session lease',
        );
    });
  }

  /**
   * Before the client's first connect: waits until this replica holds its session lease (a drain
   * of its session from before a restart may hold it for a while).
   */
  async beforeConnect(): Promise<void> {
    await this.claim?.ready(DEFAULT_DRAIN_LIMIT_MS + 2 * this.staleAfterMs);
  }

  /**
   * The replica's duty timers, once the client started: the owner of DUTY.slotSessions drains dead
   * replicas' sessions, the owner of DUTY.outboxOrphans sweeps for dead replicas' rows, the owner of
   * DUTY.bundle notices a KeyPackage that a Welcome on another replica consumed, and every replica
   * picks up groups another one joined or left.
   */
  start(): void {
    const { replica, groups, bundles, log } = this.deps;
    this.running = true;
    // The link may have dropped during start-up already.
    if (!this.deps.transport.connected) this.fence?.linkDown();
    if (this.slotSessions) {
      this.slotSessions.start(replica.slotCheckMs ?? DEFAULT_SLOT_CHECK_MS);
      void this.slotSessions.sweep().catch(() => undefined);
    }
    // Groups another replica joined or left (it took the Welcome, or the removal).
    this.groupSyncTimer = setInterval(
      () => void groups.syncTopics().catch((e) => log.warn({ err: String(e) }, 'group sync failed')),
      replica.groupSyncMs ?? DEFAULT_GROUP_SYNC_MS,
    );
    this.groupSyncTimer.unref();
    this.orphans.start(replica.orphanCheckMs ?? DEFAULT_ORPHAN_CHECK_MS);
    void this.orphans.sweep().catch(() => undefined);
    this.bundleCheckTimer = setInterval(
      () => void bundles.refresh().catch((e) => this.deps.fail(e)),
      replica.bundleCheckMs ?? DEFAULT_BUNDLE_CHECK_MS,
    );
    this.bundleCheckTimer.unref();
  }

  /**
   * A graceful stop's replica part, while the broker is still there: leaves the share group when
   * another replica runs, then ends the timers and waits for a sweep in progress.
   */
  async stop(): Promise<void> {
    this.running = false;
    await this.fence?.stop();
    if (this.bundleCheckTimer) clearInterval(this.bundleCheckTimer);
    if (this.groupSyncTimer) clearInterval(this.groupSyncTimer);
    this.bundleCheckTimer = this.groupSyncTimer = undefined;
    await this.leaveShareGroup();
    await this.slotSessions?.stop();
    await this.orphans.stop();
  }

  /** This replica just took over a duty (the client forwards every one after start-up). */
  onDutyAcquired(name: string): void {
    if (name === DUTY.outboxOrphans) void this.orphans.sweep().catch(() => undefined);
  }

  /**
   * A replica stopping while others run: its shared subscriptions go first, so the broker hands the
   * messages to the others at once instead of queueing a share for this session until it returns
   * (issue 13); what is in flight is finished by stop(), and start() subscribes again. The last live
   * replica keeps them, so the broker queues for the identity while none runs.
   */
  private async leaveShareGroup(): Promise<void> {
    const { transport, replica, log } = this.deps;
    if (!transport.connected || transport.sharedFilters().length === 0) return;
    try {
      const replicas = await replica.registry.listReplicas(this.staleAfterMs);
      if (!replicas.some((r) => r.live && r.replicaId !== replica.replicaId)) return;
      await transport.unsubscribeShared();
    } catch (e) {
      log.warn({ err: e instanceof Error ? e.message : String(e) }, 'leaving the share group failed');
    }
  }
}

/**
 * A rate-limited reload of the access index from the store (access-refresh.ts): a replica learns
 * of sessions another replica opened or moved on only from the store.
 */
export function accessReload(
  direct: Pick<DirectShell, 'restore'>,
  counters?: WorkCounters,
): (hint?: string, via?: InboundVia) => Promise<boolean> {
  const refresh = new AccessRefresh({
    reload: () => {
      counters?.increment('access_reload');
      return direct.restore();
    },
  });
  return (hint, via) => refresh.request(hint, via);
}
