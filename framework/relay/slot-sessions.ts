/**
 * The broker sessions of dead replicas (issue 13; ARCHITECTURE.md "One identity, many processes";
 * who is dead: dead-replicas.ts, fixed and `replicaSlot: auto` slots alike).
 * Mosquitto keeps handing a share group's messages, in turn, to every member with a session, also
 * to a persistent session whose process was SIGKILLed or scaled down: they wait there until that
 * slot connects again, and are discarded when the session expires. The owner of DUTY.slotSessions
 * therefore connects with a dead replica's client id (clean start off, so the broker hands over what
 * is queued), feeds those messages into its own inbound path, unsubscribes the session's shared
 * filters, waits for what it took in to finish, and disconnects with session expiry 0 so the broker
 * forgets that member.
 *
 * A replica counted dead by its heartbeat may be alive and merely late (a stalled process, a slow
 * database): connecting with its client id would take its session over (DISCONNECT 0x8E) while it
 * works. So a drain first takes the client id's session lease (broker-client-id.ts sessionLease),
 * which a running replica holds and renews (session-claim.ts): a live lease means no drain, and a
 * replica never reconnects while a drain holds it. The drain renews it while it runs and releases
 * it at the end. Should the replica connect anyway (a replica of an older release, or one without
 * a session claim), the broker's takeover closes the drain connection and the drain just stops.
 */
import { connectGuarded } from './connect-guard.js';
import { PeriodicSweep } from './periodic-sweep.js';
import type { Logger } from 'pino';
import type { DeadReplica, DeadReplicas } from './dead-replicas.js';
import type { InboundMessage } from './transport-types.js';
import type { LeaseStore } from './lease-store.js';

/** Default spacing of the owner's sweeps. */
export const DEFAULT_SLOT_CHECK_MS = 5_000;
/** How long a drain connection must receive nothing before the session counts as emptied. */
export const DEFAULT_DRAIN_QUIET_MS = 1_000;
/** The longest one drain may take before it gives up (the next sweep tries again). */
export const DEFAULT_DRAIN_LIMIT_MS = 60_000;

/** A connection under another replica's client id: the parts of MqttTransport a drain uses. */
export interface DrainConnection {
  /** Registers the inbound handler (before connect): each message is acknowledged once it resolves. */
  onMessage(handler: (m: InboundMessage) => Promise<void>): void;
  connect(): Promise<{ sessionPresent: boolean }>;
  /** `close`: the socket closed (also before CONNACK, when connect() alone would never settle). */
  once(event: 'close', fn: () => void): unknown;
  off(event: 'close', fn: () => void): unknown;
  /** Unsubscribes a raw topic filter (a `$share/…` one here). */
  unsubscribe(filter: string): Promise<void>;
  /** Closes; `forgetSession` asks the broker to delete the session (DISCONNECT session expiry 0). */
  end(opts: { forgetSession?: boolean }): Promise<void>;
  readonly connected: boolean;
}

/** A drain's hold on a client id's session lease (claimSession). */
export interface DrainClaim {
  /** Renews the lease when due; false once it is no longer ours (stop draining). */
  keep(): Promise<boolean>;
  release(): Promise<void>;
}

/** For drains that take no lease (no lease store): always held. */
export const UNCLAIMED: DrainClaim = { keep: async () => true, release: async () => undefined };

/**
 * Takes `name` for `holder` for ttlMs, or undefined when another holder's lease is live. The claim
 * renews it every third of ttlMs and counts it lost from a deadline measured before each request.
 */
export async function claimSession(
  store: Pick<LeaseStore, 'acquireLease' | 'renewLease' | 'releaseLease'>,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<DrainClaim | undefined> {
  let started = performance.now();
  if (!(await store.acquireLease(name, holder, ttlMs))) return undefined;
  let deadline = started + ttlMs - Math.floor(ttlMs / 10);
  let lost = false;
  return {
    keep: async () => {
      if (lost || performance.now() >= deadline) return !(lost = true);
      if (performance.now() - started < ttlMs / 3) return true;
      started = performance.now();
      if (!(await store.renewLease(name, holder, ttlMs))) return !(lost = true);
      deadline = started + ttlMs - Math.floor(ttlMs / 10);
      return true;
    },
    release: async () => {
      lost = true;
      await store.releaseLease(name, holder);
    },
  };
}

export interface SlotSessionsDeps {
  /** Who is dead, by the replica registry (never this replica). */
  dead: Pick<DeadReplicas, 'read'>;
  /** Whether this replica owns DUTY.slotSessions now. */
  owns(): boolean;
  /** The MQTT client id a dead replica connected with, or undefined when it cannot be told. */
  clientIdOf(replica: DeadReplica): string | undefined;
  /**
   * Takes the right to connect with `clientId` (its session lease), or undefined when its replica
   * (or another drain) holds it: then it is not drained now. Without it, drains take no lease.
   */
  claim?(clientId: string): Promise<DrainClaim | undefined>;
  /** A new, unconnected connection that will use `clientId` and never reconnects on its own. */
  open(clientId: string): DrainConnection;
  /** This replica's inbound path (what its own transport's messages go through). */
  receive(m: InboundMessage): Promise<void>;
  /** The shared filters a replica's session holds now (inbox and every group topic, `$share/…`). */
  sharedFilters(): string[];
  quietMs?: number;
  limitMs?: number;
  log: Logger;
}

/** Dead replicas, except those already drained at the heartbeat they have now. */
export function slotsToDrain(
  dead: readonly DeadReplica[],
  drained: ReadonlyMap<string, number>,
): DeadReplica[] {
  return dead.filter((r) => drained.get(r.replicaId) !== r.lastSeen);
}

/** What one drain did. */
export interface DrainOutcome {
  clientId: string;
  /** Messages fed into the inbound path. */
  messages: number;
  /** The session was forgotten (false: the replica took its session back, or the drain timed out). */
  forgotten: boolean;
}

export class SlotSessions {
  private readonly sweeper = new PeriodicSweep<DrainOutcome[]>(
    () => this.sweepOnce(),
    (e) => this.warn(e),
  );
  /** Replica id → the heartbeat it had when drained; a later heartbeat (it ran again) drains again. */
  private readonly drained = new Map<string, number>();

  constructor(private readonly deps: SlotSessionsDeps) {}

  /** Sweeps every `everyMs` until stop(); failures are logged and retried on the next sweep. */
  start(everyMs: number = DEFAULT_SLOT_CHECK_MS): void {
    this.sweeper.start(everyMs);
  }

  stop(): Promise<unknown> {
    return this.sweeper.stop();
  }

  /** One sweep now (one already running is joined): drains every dead replica's session. */
  sweep(): Promise<DrainOutcome[]> {
    return this.sweeper.sweep();
  }

  private async sweepOnce(): Promise<DrainOutcome[]> {
    const d = this.deps;
    if (!d.owns()) return [];
    const dead = slotsToDrain((await d.dead.read(true)).dead, this.drained);
    const outcomes: DrainOutcome[] = [];
    for (const r of dead) {
      if (!d.owns()) break;
      const clientId = d.clientIdOf(r);
      if (clientId === undefined) continue;
      const claim = d.claim ? await d.claim(clientId) : UNCLAIMED;
      if (!claim) {
        // Late heartbeat, live session lease: the replica runs, its session is its own.
        d.log.debug({ replica: r.replicaId }, 'no heartbeat but its session lease is held: not drained');
        continue;
      }
      let outcome: DrainOutcome;
      try {
        // A late replica beating again wants its session back: its share stops coming here (the
        // drain unsubscribes and forgets the session) instead of at the time limit.
        const back = every(BACK_CHECK_MS, async () => !(await d.dead.read()).isDead(r.replicaId));
        outcome = await this.drain(clientId, claim, back);
      } catch (e) {
        // The broker did not take the connection (or dropped it mid-drain): the other dead
        // replicas still get their turn, and the next sweep tries this one again.
        d.log.warn(
          { replica: r.replicaId, clientId, err: e instanceof Error ? e.message : String(e) },
          "draining a dead replica's broker session failed; the next sweep tries again",
        );
        continue;
      } finally {
        await claim.release().catch((e: unknown) => this.warn(e));
      }
      if (outcome.forgotten) this.drained.set(r.replicaId, r.lastSeen);
      if (outcome.messages > 0 || !outcome.forgotten)
        d.log.info({ replica: r.replicaId, ...outcome }, "drained a dead replica's broker session");
      outcomes.push(outcome);
    }
    return outcomes;
  }

  /**
   * Takes over `clientId`'s session, processes what it holds, and has the broker forget it; stops
   * (not forgotten) as soon as `claim` is lost.
   */
  async drain(
    clientId: string,
    claim: DrainClaim = UNCLAIMED,
    ownerBack: () => Promise<boolean> = async () => false,
  ): Promise<DrainOutcome> {
    const d = this.deps;
    const quietMs = d.quietMs ?? DEFAULT_DRAIN_QUIET_MS;
    const deadline = Date.now() + (d.limitMs ?? DEFAULT_DRAIN_LIMIT_MS);
    const conn = d.open(clientId);
    let messages = 0;
    let lastArrival = Date.now();
    const inFlight = new Set<Promise<void>>();
    conn.onMessage((m) => {
      messages++;
      lastArrival = Date.now();
      const p = d.receive(m);
      inFlight.add(p);
      return p.finally(() => inFlight.delete(p));
    });
    const idle = async () => {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    };
    let held = true;
    try {
      // Never reconnecting, connect() alone would hang for good on a socket closed before CONNACK.
      const { sessionPresent } = await connectGuarded(conn);
      if (sessionPresent) {
        // Queued messages arrive right after CONNACK, more as we acknowledge, and the share group
        // goes on routing new ones here: wait for a pause (or for the replica to beat again).
        // The claim is checked first, so it is current whichever condition ends the wait.
        while (
          (held = await claim.keep()) &&
          conn.connected &&
          Date.now() < deadline &&
          (inFlight.size > 0 || Date.now() - lastArrival < quietMs) &&
          !(await ownerBack())
        )
          await sleep(Math.min(100, quietMs));
        // No more routed here; what arrived meanwhile is finished (and acknowledged) below. Not
        // without the claim: the replica may take its session back, and needs its subscriptions.
        for (const filter of d.sharedFilters()) if (held && conn.connected) await conn.unsubscribe(filter);
      }
      await idle();
      // Taken over by the replica itself, or out of time: leave the session to it / the next sweep.
      // Claim lost: the replica may connect now, and must find its session.
      if (!conn.connected || Date.now() >= deadline || !(await claim.keep()))
        return { clientId, messages, forgotten: false };
      await conn.end({ forgetSession: true });
      return { clientId, messages, forgotten: true };
    } finally {
      await conn.end({}).catch(() => undefined);
    }
  }

  private warn(e: unknown): void {
    this.deps.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'slot session sweep failed');
  }
}

/** How often a drain reads the registry for its replica beating again. */
const BACK_CHECK_MS = 500;

/** `check`, run at most once per `ms`; in between, its last answer. */
function every(ms: number, check: () => Promise<boolean>): () => Promise<boolean> {
  let last = false;
  let at = Date.now();
  return async () => {
    if (Date.now() - at < ms) return last;
    at = Date.now();
    last = await check().catch(() => false);
    return last;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
