/**
 * Fencing a replica that lost the broker (issue 13; ARCHITECTURE.md "One identity, many
 * processes"). A replica cut off from the broker but still reaching Postgres would go on beating
 * in the registry, so the others would never count it dead: nobody would take over its duties,
 * claim its committed-but-unpublished outbox rows (outbox-orphans.ts) or drain what the broker
 * queues in its session (slot-sessions.ts). Once its link has been down for fenceAfterMs, the
 * replica fences itself through its membership (a LeaseKeeper): its duties are released at once,
 * its heartbeat stops, and after staleAfterMs the others treat it as dead. When the link is back it
 * rejoins: registers again and competes for the duties.
 *
 * With a session claim (session-claim.ts) the fenced replica also gives up the right to its MQTT
 * client id, so its transport does not reconnect by itself: a `probe` (a connection under a
 * throwaway client id) tells when the broker is reachable again, and the replica rejoins then; if
 * its own connection is not back within fenceAfterMs after that, it fences again.
 *
 * The link counts as down from the moment the transport reports the connection closed, which for
 * a pulled cable is when MQTT.js misses a ping response (up to about two keepalives).
 */
import type { Logger } from 'pino';
import { systemLeaseTimers, type LeaseTimers } from './lease-keeper.js';
import { checkDurationMs } from './lease-store.js';

/**
 * Default time the broker link must stay down before a replica fences itself: two keepalives of
 * the transport (30 s each), so a broker restart or a short network blip does not move duties.
 */
export const DEFAULT_FENCE_AFTER_MS = 60_000;

/** A replica's membership among the replicas of its identity; LeaseKeeper is one. */
export interface ReplicaMembership {
  /** Stops beating in the registry and gives up the duties (LeaseKeeper.fence). */
  fence(): Promise<void>;
  /** Beats again and competes for the duties (LeaseKeeper.rejoin). */
  rejoin(): Promise<void>;
}

export interface ReplicaFenceDeps {
  membership: ReplicaMembership;
  fenceAfterMs: number;
  /** Whether the broker link is up now. */
  connected(): boolean;
  log: Logger;
  timers?: LeaseTimers;
  /** While fenced, tried every probeEveryMs: whether the broker is reachable (session-claim.ts). */
  probe?: () => Promise<boolean>;
  probeEveryMs?: number;
}

/** Default spacing of a fenced replica's probes. */
export const DEFAULT_PROBE_EVERY_MS = 2_000;

/** Follows the broker link and fences or rejoins the replica's membership; see the module comment. */
export class ReplicaFence {
  private cancelTimer: (() => void) | undefined;
  private cancelProbe: (() => void) | undefined;
  private isFenced = false;
  private stopped = false;
  /** The fence or rejoin in progress: the next one waits for it, so they stay in order. */
  private step: Promise<void> = Promise.resolve();

  /** Throws ArgumentError when fenceAfterMs is not a whole number of milliseconds from 1 up to a day. */
  constructor(private readonly deps: ReplicaFenceDeps) {
    checkDurationMs('replica.fenceAfterMs', deps.fenceAfterMs);
  }

  /** Whether this replica is fenced now. */
  get fenced(): boolean {
    return this.isFenced;
  }

  /** The link closed (or a reconnect failed): fence after fenceAfterMs unless it comes back. */
  linkDown(): void {
    if (this.stopped || this.isFenced || this.cancelTimer) return;
    const timers = this.deps.timers ?? systemLeaseTimers;
    this.cancelTimer = timers.after(this.deps.fenceAfterMs, () => {
      this.cancelTimer = undefined;
      if (this.stopped || this.deps.connected()) return;
      this.isFenced = true;
      this.deps.log.warn(
        { downMs: this.deps.fenceAfterMs },
        'broker unreachable: fencing this replica (its duties, outbox rows and queued messages go to the others)',
      );
      this.then(() => this.deps.membership.fence());
      this.probeLater();
    });
  }

  /** While fenced: probes the broker, and rejoins once it answers. */
  private probeLater(): void {
    const { probe, probeEveryMs } = this.deps;
    if (!probe || this.stopped || !this.isFenced || this.cancelProbe) return;
    const timers = this.deps.timers ?? systemLeaseTimers;
    this.cancelProbe = timers.after(probeEveryMs ?? DEFAULT_PROBE_EVERY_MS, () => {
      void probe()
        .catch(() => false)
        .then((up) => {
          this.cancelProbe = undefined;
          if (this.stopped || !this.isFenced) return;
          if (!up) return this.probeLater();
          this.isFenced = false;
          this.deps.log.info('broker reachable again (probe): this replica rejoins');
          this.then(() => this.deps.membership.rejoin());
          // Its own connection follows once it holds its session lease; if not, fence again.
          if (!this.deps.connected()) this.linkDown();
        });
    });
  }

  /** The link is up (CONNACK): a pending fence is called off, a fenced replica rejoins. */
  linkUp(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.cancelProbe?.();
    this.cancelProbe = undefined;
    if (this.stopped || !this.isFenced) return;
    this.isFenced = false;
    this.deps.log.info('broker reachable again: this replica rejoins');
    this.then(() => this.deps.membership.rejoin());
  }

  /** No more fencing or rejoining (a graceful stop); resolves once a step in progress ended. */
  stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.cancelProbe?.();
    this.cancelProbe = undefined;
    return this.step;
  }

  private then(next: () => Promise<void>): void {
    this.step = this.step
      .then(next)
      .catch((e: unknown) =>
        this.deps.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'replica fence step failed'),
      );
  }
}
