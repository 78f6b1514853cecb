/**
 * A transport's reconnects behind a gate (MqttTransport.setConnectGate): a replica reconnects with
 * its client id only while it holds the right to it (session-claim.ts). MQTT.js's own reconnect
 * timer cannot be held back, so with a gate it is off (reconnectPeriod 0) and this reconnects
 * instead: reconnectPeriodMs after a close, and at once when the gate's owner says it opened.
 *
 * A connection that looks up is not always: over a link that stopped passing packets, a drain may
 * have taken the session over (the broker closed our connection, and we never heard it), and MQTT.js
 * tells only at its keepalive timeout (1.5 keepalives) or when TCP retransmits into the broker's
 * reset, which after a long cut can be two minutes after the link is back. So when the gate opens
 * again after it was shut (reconnectNow(silentSince)), a connection that received nothing from the
 * broker since then is dropped and made again.
 */
import type { MqttClient } from 'mqtt';

export interface ReconnectGateDeps {
  /** Whether the transport may connect now. */
  mayConnect(): boolean;
  periodMs: number;
  /** The transport's MQTT.js client, once connect() made it. */
  client(): MqttClient | undefined;
  /** end() was called: no more reconnects. */
  ending(): boolean;
  /** The gate was found closed: another connection may use the session meanwhile. */
  closedSeen(): void;
}

export class ReconnectGate {
  private timer: NodeJS.Timeout | undefined;
  /** A connection attempt of ours is under way. */
  private attempting = false;
  /** A first CONNACK came: before it, connect()'s own attempt is not retried. */
  private connectedOnce = false;
  /** performance.now() when the last packet came from the broker. */
  private heardAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: ReconnectGateDeps) {}

  /** Whether a close now is of an established connection (not of a failed attempt). */
  get wasConnected(): boolean {
    return this.connectedOnce && !this.attempting && !this.deps.ending();
  }

  /** A CONNACK arrived. */
  connected(): void {
    this.connectedOnce = true;
    this.attempting = false;
  }

  /** A packet came from the broker. */
  heard(): void {
    this.heardAt = performance.now();
  }

  /**
   * Reconnects now if disconnected, no attempt is under way and the gate is open. With
   * `silentSince` (performance.now() when the gate was shut), a connection that looks up but heard
   * nothing from the broker since then is dropped (see the module comment); true when it was.
   */
  reconnectNow(silentSince?: number): boolean {
    const client = this.deps.client();
    if (!client || this.deps.ending() || !this.connectedOnce || this.attempting) return false;
    if (client.connected) {
      if (silentSince === undefined || this.heardAt > silentSince || !this.deps.mayConnect()) return false;
      // The session may have been used by a drain meanwhile: replay the subscriptions on CONNACK.
      this.deps.closedSeen();
      // Its 'close' takes the usual way: closed(), then a reconnect reconnectPeriodMs later.
      client.stream.destroy();
      return true;
    }
    if (!this.deps.mayConnect()) {
      this.deps.closedSeen();
      return false;
    }
    this.cancel();
    this.attempting = true;
    // Without its stores, MQTT.js's reconnect() starts empty ones: publishes waiting for their
    // PUBACK would never settle, nor be sent again.
    client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    return false;
  }

  /** The connection (or an attempt) closed: check again reconnectPeriodMs later, until connected. */
  closed(): void {
    this.attempting = false;
    if (this.deps.ending() || !this.connectedOnce || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconnectNow();
      if (!this.attempting && !this.deps.client()?.connected) this.closed();
    }, this.deps.periodMs);
    this.timer.unref();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
