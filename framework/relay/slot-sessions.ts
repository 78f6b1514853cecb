/**
 * The broker sessions of dead replicas (issue 13; ARCHITECTURE.md "One identity, many processes";
 * who is dead: dead-replicas.ts, fixed and `replicaSlot: auto` slots alike).
 * Mosquitto keeps handing a share group's messages, in turn, to every member with a session, also
 * to a persistent session whose process was SIGKILLed or scaled down: they wait there until that
 * slot connects again, and are discarded when the session expires. The owner of DUTY.slotSessions
 * therefore connects with a dead replica's client id (clean start off, so the broker hands over what
 * is queued), feeds those messages into its own inbound path, unsubscribes the session's shared
 * filters, waits for what it took in to finish, and disconnects with session expiry 0 so the broker
 * forgets that member. If the real replica comes back meanwhile, the broker's client-id takeover
 * closes the drain connection; the drain just stops (the replica gets the session back).
 */
import { PeriodicSweep } from './periodic-sweep.js';
import type { Logger } from 'pino';
import type { DeadReplica, DeadReplicas } from './dead-replicas.js';
import type { InboundMessage } from './transport-types.js';

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
  /** Unsubscribes a raw topic filter (a `$share/…` one here). */
  unsubscribe(filter: string): Promise<void>;
  /** Closes; `forgetSession` asks the broker to delete the session (DISCONNECT session expiry 0). */
  end(opts: { forgetSession?: boolean }): Promise<void>;
  readonly connected: boolean;
}

export interface SlotSessionsDeps {
  /** Who is dead, by the replica registry (never this replica). */
  dead: Pick<DeadReplicas, 'read'>;
  /** Whether this replica owns DUTY.slotSessions now. */
  owns(): boolean;
  /** The MQTT client id a dead replica connected with, or undefined when it cannot be told. */
  clientIdOf(replica: DeadReplica): string | undefined;
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
      const outcome = await this.drain(clientId);
      if (outcome.forgotten) this.drained.set(r.replicaId, r.lastSeen);
      if (outcome.messages > 0 || !outcome.forgotten)
        d.log.info({ replica: r.replicaId, ...outcome }, "drained a dead replica's broker session");
      outcomes.push(outcome);
    }
    return outcomes;
  }

  /** Takes over `clientId`'s session, processes what it holds, and has the broker forget it. */
  async drain(clientId: string): Promise<DrainOutcome> {
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
    try {
      const { sessionPresent } = await conn.connect();
      if (sessionPresent) {
        // Queued messages arrive right after CONNACK, more as we acknowledge: wait for a pause.
        while (
          conn.connected &&
          Date.now() < deadline &&
          (inFlight.size > 0 || Date.now() - lastArrival < quietMs)
        )
          await sleep(Math.min(100, quietMs));
        // No more routed here; what arrived meanwhile is finished (and acknowledged) below.
        for (const filter of d.sharedFilters()) if (conn.connected) await conn.unsubscribe(filter);
      }
      await idle();
      // Taken over by the replica itself, or out of time: leave the session to it / the next sweep.
      if (!conn.connected || Date.now() >= deadline) return { clientId, messages, forgotten: false };
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
