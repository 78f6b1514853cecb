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
 * subscribes again (the drain unsubscribed and forgot the session).
 *
 * A fenced replica (replica-fence.ts) gives the lease up with its duties, so its queued share is
 * drained; it tells that the broker is back with a probe connection under a throwaway client id
 * (probeBroker), and only then competes for the lease again.
 */
import { randomBytes } from 'node:crypto';
import { connectGuarded, CONNECT_GUARD_MS } from './connect-guard.js';
import { TransportError } from './errors.js';
import type { MqttTransport, MqttTransportOptions } from './transport.js';

/** The parts of a LeaseKeeper the claim uses. */
export interface SessionKeeper {
  want(name: string): void;
  owns(name: string): boolean;
  renewNow(): Promise<void>;
  on(event: 'acquired', fn: (name: string) => void): unknown;
}

export interface SessionClaimDeps {
  keeper: SessionKeeper;
  /** The lease: sessionLease(<this replica's client id>). */
  lease: string;
  transport: Pick<MqttTransport, 'setConnectGate' | 'reconnectNow'>;
}

/** Gates a replica's transport on its session lease; see the module comment. */
export class SessionClaim {
  constructor(private readonly deps: SessionClaimDeps) {
    const { keeper, lease, transport } = deps;
    keeper.want(lease);
    transport.setConnectGate(() => keeper.owns(lease));
    keeper.on('acquired', (name) => {
      if (name === lease) transport.reconnectNow();
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
