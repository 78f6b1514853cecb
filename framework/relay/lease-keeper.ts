/**
 * LeaseKeeper: one replica's side of the leases (lease-store.ts). It holds a set of wanted lease
 * names, takes each one that is free or expired, renews the ones it holds on a timer, reports every
 * change of ownership as an event, and keeps the replica's row in the registry beating. stop()
 * releases everything, so a graceful shutdown hands its duties over at once instead of after a ttl.
 *
 * Ownership is judged locally against a deadline measured from *before* each successful request
 * (minus a margin), on a monotonic clock: the database's expiry is later than that whatever the
 * two wall clocks say, so two replicas never both believe they own a lease. A replica paused
 * between owns() and its action can still act late; the stores' compare-and-set versions are what
 * make such a late write fail.
 *
 * Every store call is bounded (renewEveryMs): over a link that stops passing packets (a pulled
 * cable) a request gets no answer and no error until TCP gives up, minutes later, or until its next
 * retransmission after the link is back (up to two minutes after). A round waiting for it would
 * report no lost lease on time and, once the database is reachable again, take no lease (the
 * replica's session lease included: session-claim.ts) until that late answer. A call without an
 * answer in time counts as failed (`error`); the next round sends a fresh one.
 *
 * fence() is for a replica that can no longer do its duties although the database answers (it
 * lost the broker: replica-fence.ts): it gives up every lease but those wanted with
 * `keepWhileFenced` (its replica slot) and stops beating, so the others count it dead; rejoin()
 * registers it again and competes for the leases as before.
 */
import { EventEmitter } from 'eventemitter3';
import { ArgumentError, StorageError } from './errors.js';
import {
  checkDurationMs,
  checkLeaseName,
  type LeaseRecord,
  type LeaseStore,
  type ReplicaInfo,
} from './lease-store.js';

/** Timers and a monotonic clock, injectable so tests control time. */
export interface LeaseTimers {
  /** Calls `fn` once after `ms`; returns what cancels it. */
  after(ms: number, fn: () => void): () => void;
  /** Monotonic milliseconds (not the wall clock, which can jump). */
  now(): number;
}

/** setTimeout (unref'd: a forgotten keeper must not keep a process alive) and performance.now(). */
export const systemLeaseTimers: LeaseTimers = {
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
  now: () => performance.now(),
};

/** Default lease length: a dead replica's duties wait at most this long. */
export const DEFAULT_LEASE_TTL_MS = 15_000;

/** What a LeaseKeeper needs: the store, who it is, and optionally the timing and the timers. */
export interface LeaseKeeperOptions {
  store: LeaseStore;
  /** This replica; its replicaId is the holder of every lease the keeper takes. */
  replica: ReplicaInfo;
  /** Lease length (default DEFAULT_LEASE_TTL_MS). */
  ttlMs?: number;
  /** Renewal interval (default a third of ttlMs); at most half of ttlMs. */
  renewEveryMs?: number;
  timers?: LeaseTimers;
}

/**
 * Why a lease stopped being ours: `expired` (no renewal succeeded in time, e.g. the database is
 * unreachable), `taken` (the store refused the renewal: it lapsed, maybe to another replica),
 * `released` (stop() or drop()), `fenced` (fence()).
 */
export type LeaseLossReason = 'expired' | 'taken' | 'released' | 'fenced';

/** How a lease is wanted. */
export interface WantOptions {
  /**
   * Kept (renewed, or taken) while the keeper is fenced: a reservation of the replica itself, such
   * as its slot and with it its MQTT client id, rather than a duty others should take over.
   */
  keepWhileFenced?: boolean;
}

/** Events of a LeaseKeeper. Listeners run synchronously: on `lost`, stop acting as owner at once. */
export interface LeaseKeeperEvents {
  acquired: (name: string, lease: LeaseRecord) => void;
  lost: (name: string, reason: LeaseLossReason) => void;
  /** A store call failed; the keeper carries on, and a lease it cannot renew in time is `lost`. */
  error: (err: unknown) => void;
}

interface Held {
  lease: LeaseRecord;
  /** Monotonic ms after which we no longer count it as ours. */
  deadline: number;
}

/** Takes, renews and releases a set of named leases for one replica (see the module comment). */
export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  readonly holder: string;
  private readonly store: LeaseStore;
  private readonly replica: ReplicaInfo;
  private readonly ttlMs: number;
  private readonly renewEveryMs: number;
  /** Time off each local deadline for clock-rate drift between us and the database. */
  private readonly marginMs: number;
  private readonly timers: LeaseTimers;
  private readonly wanted = new Set<string>();
  private readonly held = new Map<string, Held>();
  /** Wanted names kept while fenced (WantOptions.keepWhileFenced). */
  private readonly kept = new Set<string>();
  private running = false;
  private isFenced = false;
  private cancelTimer: (() => void) | undefined;
  /** Reports held leases `expired` at their deadline, also while a round waits on the store. */
  private cancelExpiry: (() => void) | undefined;
  private round: Promise<void> | undefined;
  private again = false;

  constructor(options: LeaseKeeperOptions) {
    super();
    this.store = options.store;
    this.replica = { ...options.replica };
    this.holder = checkLeaseName('replicaId', options.replica.replicaId);
    this.ttlMs = checkDurationMs('lease ttlMs', options.ttlMs ?? DEFAULT_LEASE_TTL_MS);
    this.renewEveryMs = checkDurationMs('renewEveryMs', options.renewEveryMs ?? Math.floor(this.ttlMs / 3));
    if (this.renewEveryMs * 2 > this.ttlMs)
      throw new ArgumentError(
        `renewEveryMs (${this.renewEveryMs}) must be at most half of ttlMs (${this.ttlMs}), so one failed renewal does not lose a lease`,
      );
    this.marginMs = Math.floor(this.ttlMs / 10);
    this.timers = options.timers ?? systemLeaseTimers;
  }

  /** Registers the replica and takes what it can of the wanted leases; then renews on the timer. */
  async start(): Promise<void> {
    if (this.running) return;
    // Not bounded: before start() resolves the replica serves nothing, and a slow first
    // connection to the database is no reason to fail its start.
    await this.store.registerReplica(this.replica);
    this.running = true;
    await this.renewNow();
  }

  /** Adds `name` to the wanted set; a running keeper tries to take it at once. */
  want(name: string, options: WantOptions = {}): void {
    this.wanted.add(checkLeaseName('lease name', name));
    if (options.keepWhileFenced) this.kept.add(name);
    else this.kept.delete(name);
    if (this.running) void this.renewNow();
  }

  /** Whether fence() was called and rejoin() has not been since. */
  get fenced(): boolean {
    return this.isFenced;
  }

  /**
   * Stops beating in the registry and gives up every lease not wanted with `keepWhileFenced`
   * (each reported `lost`, reason `fenced`, before it is released), until rejoin(). The replica's
   * row stays, so the others see it go stale and count it dead after their staleAfterMs.
   */
  async fence(): Promise<void> {
    if (!this.running || this.isFenced) return;
    this.isFenced = true;
    const names = [...this.held.keys()].filter((n) => !this.kept.has(n)).sort();
    for (const name of names) this.held.delete(name);
    for (const name of names) this.emit('lost', name, 'fenced');
    for (const name of names) await this.releaseQuietly(name);
  }

  /** Ends a fence: registers the replica again (a new start) and competes for every wanted lease. */
  async rejoin(): Promise<void> {
    if (!this.running || !this.isFenced) return;
    this.isFenced = false;
    try {
      await this.bounded(this.store.registerReplica(this.replica), 'registerReplica');
    } catch (err) {
      // The next heartbeat registers it again (no row, or a stale one that beats once more).
      this.emit('error', err);
    }
    await this.renewNow();
  }

  /** Stops wanting `name`, releasing it if held (`lost` with reason `released` first). */
  async drop(name: string): Promise<void> {
    this.wanted.delete(name);
    this.kept.delete(name);
    if (!this.held.delete(name)) return;
    this.emit('lost', name, 'released');
    await this.releaseQuietly(name);
  }

  /** Whether `name` is ours now: held, and its local deadline not passed. */
  owns(name: string): boolean {
    const held = this.held.get(name);
    return held !== undefined && this.timers.now() < held.deadline;
  }

  /** The names owned now, sorted. */
  owned(): string[] {
    return [...this.held.keys()].filter((n) => this.owns(n)).sort();
  }

  /**
   * One renewal round now (heartbeat, renew what is held, try to take the rest); resolves when it
   * is done. A call during a round makes that round run once more.
   */
  renewNow(): Promise<void> {
    if (this.round) {
      this.again = true;
      return this.round;
    }
    this.round = (async () => {
      do {
        this.again = false;
        try {
          await this.renewAll();
        } catch (err) {
          // Only a throwing event listener gets here; the store's failures are handled inside.
          this.emit('error', err);
        }
      } while (this.again && this.running);
    })().finally(() => {
      this.round = undefined;
      this.arm();
    });
    return this.round;
  }

  /**
   * Stops renewing, reports every held lease `lost` (`released`), then releases them all and
   * removes the replica's row, so other replicas take over without waiting for the ttl.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.isFenced = false;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    await this.round;
    const names = [...this.held.keys()].sort();
    this.held.clear();
    // Listeners stop acting as owner before the leases become free to take.
    for (const name of names) this.emit('lost', name, 'released');
    try {
      await this.bounded(this.store.releaseAll(this.holder), 'releaseAll');
      await this.bounded(this.store.removeReplica(this.holder), 'removeReplica');
    } catch (err) {
      // The leases still expire after the ttl; only the quick hand-over is lost.
      this.emit('error', err);
    }
  }

  /** Arms the expiry check for the earliest deadline of the leases held. */
  private armExpiry(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    if (!this.running || this.held.size === 0) return;
    const first = Math.min(...[...this.held.values()].map((h) => h.deadline));
    this.cancelExpiry = this.timers.after(Math.max(0, first - this.timers.now()), () => {
      this.cancelExpiry = undefined;
      this.expireOverdue();
      this.armExpiry();
    });
  }

  private arm(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (!this.running) return;
    const now = this.timers.now();
    let delay = this.renewEveryMs;
    for (const { deadline } of this.held.values()) delay = Math.min(delay, Math.max(0, deadline - now));
    this.cancelTimer = this.timers.after(delay, () => {
      this.cancelTimer = undefined;
      this.expireOverdue();
      void this.renewNow();
    });
  }

  private expireOverdue(): void {
    const now = this.timers.now();
    for (const [name, { deadline }] of [...this.held]) {
      if (deadline > now) continue;
      this.held.delete(name);
      this.emit('lost', name, 'expired');
    }
  }

  private async renewAll(): Promise<void> {
    this.expireOverdue();
    if (!this.isFenced) await this.heartbeat();
    const names = [...this.wanted].filter((n) => !this.isFenced || this.kept.has(n));
    if (this.store.acquireLeases && names.length > 1) await this.renewTogether(names);
    else await Promise.all(names.map((name) => this.renewOne(name)));
    this.expireOverdue();
  }

  /**
   * Every wanted lease in one statement (LeaseStore.acquireLeases), held or not: an idle replica
   * pays one statement per round, not one per duty (issue 13). Taking a lease we hold renews it and
   * keeps its acquiredAt; a new acquiredAt on one we hold means it lapsed in between (it expired,
   * or was deleted, and was taken afresh): reported `lost` (`taken`) as a refused renewal was, and
   * `acquired` on the next round.
   */
  private async renewTogether(names: readonly string[]): Promise<void> {
    const started = this.timers.now();
    const had = new Map(names.map((n) => [n, this.held.get(n)]));
    let leases: LeaseRecord[];
    try {
      leases = await this.bounded(this.store.acquireLeases!(names, this.holder, this.ttlMs), 'acquireLeases');
    } catch (err) {
      this.emit('error', err);
      return;
    }
    const got = new Map(leases.map((l) => [l.name, l]));
    for (const name of names) {
      const before = had.get(name);
      const lease = got.get(name);
      const lapsed =
        before !== undefined && lease !== undefined && lease.acquiredAt !== before.lease.acquiredAt;
      if (lapsed && this.running && this.held.get(name) === before) {
        // As a refused renewal: lost now, taken again (it is ours in the store) on the next round.
        this.held.delete(name);
        this.emit('lost', name, 'taken');
        continue;
      }
      await this.settle(name, before, lease, started);
    }
  }

  private async heartbeat(): Promise<void> {
    try {
      // No row: someone removed it (doctor, or a stop() of an earlier life); register again.
      if (!(await this.bounded(this.store.heartbeatReplica(this.holder), 'heartbeatReplica')))
        await this.bounded(this.store.registerReplica(this.replica), 'registerReplica');
    } catch (err) {
      this.emit('error', err);
    }
  }

  private async renewOne(name: string): Promise<void> {
    const started = this.timers.now();
    const had = this.held.get(name);
    let lease: LeaseRecord | undefined;
    try {
      lease = had
        ? await this.bounded(this.store.renewLease(name, this.holder, this.ttlMs), 'renewLease')
        : await this.bounded(this.store.acquireLease(name, this.holder, this.ttlMs), 'acquireLease');
    } catch (err) {
      this.emit('error', err);
      return;
    }
    await this.settle(name, had, lease, started);
  }

  /** What a request for `name` (sent at `started`, holding `had`) answered: held, lost or taken. */
  private async settle(
    name: string,
    had: Held | undefined,
    lease: LeaseRecord | undefined,
    started: number,
  ): Promise<void> {
    if (!this.running) return; // stop() releases everything
    if (!this.wanted.has(name) || (this.isFenced && !this.kept.has(name))) {
      // Dropped, or fenced, while the request was out.
      if (lease) await this.releaseQuietly(name);
      return;
    }
    const current = this.held.get(name);
    if (!lease) {
      if (current !== undefined && current === had) {
        this.held.delete(name);
        this.emit('lost', name, 'taken');
      }
      return;
    }
    this.held.set(name, { lease, deadline: started + this.ttlMs - this.marginMs });
    this.armExpiry();
    if (current === undefined) this.emit('acquired', name, lease);
  }

  private async releaseQuietly(name: string): Promise<void> {
    try {
      await this.bounded(this.store.releaseLease(name, this.holder), 'releaseLease');
    } catch (err) {
      this.emit('error', err);
    }
  }

  /**
   * `request`, or a StorageError once renewEveryMs passed without its answer (see the module
   * comment). A late answer is ignored: a lease it took or renewed is taken again by the same
   * holder on the next round (acquireLease is idempotent for its holder), or lapses after the ttl.
   */
  private bounded<T>(request: Promise<T>, what: string): Promise<T> {
    let cancel: (() => void) | undefined;
    const limit = new Promise<never>((_, reject) => {
      cancel = this.timers.after(this.renewEveryMs, () =>
        reject(
          new StorageError(
            `the lease store did not answer ${what} within ${this.renewEveryMs} ms (link down?); the next round asks again`,
          ),
        ),
      );
    });
    // The abandoned request may still fail later: nobody waits for it.
    request.catch(() => undefined);
    return Promise.race([request, limit]).finally(() => cancel?.());
  }
}
