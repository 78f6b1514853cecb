/**
 * A replica's claim on its own MQTT client id (issue 13; ARCHITECTURE.md "One identity, many
 * processes"). Two connections with one client id take the broker session from each other, and a
 * drain (slot-sessions.ts) connects with a dead replica's client id. "Dead" is read from the
 * registry heartbeat, which a live but stalled replica (a paused process, a slow database) can miss:
 * without a claim both sides would kick each other for as long as the heartbeat stays late.
 *
 * So the right to connect with a client id is a lease (broker-client-id.ts sessionLease): the
 * replica wants it through its LeaseKeeper and connects, and reconnects, only while it owns it (the
 * transport's connect gate); a drain takes it before connecting and holds it while it drains. The
 * keeper's local deadline ends before the store's expiry, so the replica has stopped counting it as
 * its own before a drain can take it. When a drain took the session over (DISCONNECT 0x8E), the
 * replica waits for the lease, which it gets again once the drain released it, then reconnects and
 * subscribes again (the drain unsubscribed and forgot the session). A connection that still looks up
 * when the lease comes back, but heard nothing from the broker since it was lost, is made again: a
 * drain may have taken its session while the link was down (transport-reconnect-gate.ts).
 *
 * A fenced replica (replica-fence.ts) gives the lease up with its duties, so its queued share is
 * drained; it tells that the broker is back with a probe connection under a throwaway client id
 * (probeBroker), and only then competes for the lease again.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { connectGuarded, CONNECT_GUARD_MS } from './connect-guard.js';
import { TransportError } from './errors.js';
import type { MqttTransport, MqttTransportOptions } from './transport.js';

/** The parts of a LeaseKeeper the claim uses. */
export interface SessionKeeper {
  want(name: string): void;
  owns(name: string): boolean;
  renewNow(): Promise<void>;
  on(event: 'acquired', fn: (name: string) => void): unknown;
  on(event: 'lost', fn: (name: string, reason: string) => void): unknown;
}

export interface SessionClaimDeps {
  keeper: SessionKeeper;
  /** The lease: sessionLease(<this replica's client id>). */
  lease: string;
  transport: Pick<MqttTransport, 'setConnectGate' | 'reconnectNow'>;
  /** Says why the replica does not reconnect, and when it makes a silent connection again. */
  log?: Pick<Logger, 'info'>;
}

/** Gates a replica's transport on its session lease; see the module comment. */
export class SessionClaim {
  /** performance.now() when the lease was lost, until it is ours again. */
  private lostAt: number | undefined;
  /** The gate was found shut since the lease was lost, and said so in the log. */
  private waitLogged = false;

  constructor(private readonly deps: SessionClaimDeps) {
    const { keeper, lease, transport, log } = deps;
    keeper.want(lease);
    transport.setConnectGate(() => {
      const owned = keeper.owns(lease);
      if (!owned && !this.waitLogged) {
        this.waitLogged = true;
        log?.info(
          { lease },
          "not reconnecting to the broker while this replica's session lease is not its own (lost with the database link, given up by a fence, or held by a drain of this session): reconnecting once it is taken again",
        );
      }
      return owned;
    });
    keeper.on('lost', (name) => {
      if (name === lease) this.lostAt ??= performance.now();
    });
    keeper.on('acquired', (name) => {
      if (name !== lease) return;
      const since = this.lostAt;
      this.lostAt = undefined;
      this.waitLogged = false;
      if (transport.reconnectNow(since))
        log?.info(
          { lease },
          'session lease taken again; the connection heard nothing from the broker since it was lost (a drain may have taken the session while the link was down): connecting again',
        );
    });
  }

  /**
   * Resolves once the lease is ours (before the first connect); a drain of our session may hold it
   * for up to its time limit. Throws TransportError after `limitMs`.
   */
  async ready(limitMs: number, pollMs = 250): Promise<void> {
    const { keeper, lease } = this.deps;
    const end = Date.now() + limitMs;
    for (;;) {
      await keeper.renewNow();
      if (keeper.owns(lease)) return;
      if (Date.now() >= end)
        throw new TransportError(
          `the lease ${lease} (the right to connect with this replica's MQTT client id) stayed held by another holder for ${limitMs} ms. Fix: check that no other process uses the same broker.replicaSlot or broker.clientId (relay-bot doctor lists the replicas and their leases)`,
        );
      await new Promise((r) => setTimeout(r, pollMs).unref());
    }
  }
}

/**
 * Whether the broker accepts a connection now, tried under a throwaway client id whose session the
 * broker forgets: a fenced replica's test of its link that takes nobody's session.
 */
export async function probeBroker(
  options: MqttTransportOptions,
  open: (o: MqttTransportOptions) => Pick<MqttTransport, 'connect' | 'end' | 'once' | 'off'>,
  limitMs = CONNECT_GUARD_MS,
): Promise<boolean> {
  const { shareGroup: _unused, ...rest } = options;
  const probe = open({
    ...rest,
    clientId: `${options.clientId}-probe-${randomBytes(4).toString('hex')}`,
    reconnectPeriodMs: 0,
    connectTimeoutMs: limitMs,
    sessionExpirySeconds: 0,
  });
  try {
    // A link that closes the socket before CONNACK, or drops packets, would leave connect() pending.
    return await connectGuarded(probe, limitMs).then(
      () => true,
      () => false,
    );
  } finally {
    await probe.end({ forgetSession: true }).catch(() => undefined);
  }
}
