/**
 * A replica's reconnect behind its session lease (session-claim.ts, transport-reconnect-gate.ts)
 * when the lease comes back after a cut: a connection that still looks up but heard nothing from
 * the broker since the lease was lost is made again (issue 13: after a cut long enough for a drain
 * to take the session, the broker had closed it and the replica did not know).
 */
import { EventEmitter } from 'eventemitter3';
import type { MqttClient } from 'mqtt';
import { SessionClaim, type SessionKeeper } from '../../framework/relay/session-claim.js';
import { ReconnectGate } from '../../framework/relay/transport-reconnect-gate.js';

/** The parts of an MQTT.js client the gate touches. */
class FakeClient {
  connected = true;
  destroyed = 0;
  reconnects = 0;
  incomingStore = {};
  outgoingStore = {};
  readonly stream = { destroy: () => void this.destroyed++ };
  reconnect(): void {
    this.reconnects++;
  }
}

function gateOn(client: FakeClient, open: { now: boolean }) {
  const seen = { closedSeen: 0 };
  const gate = new ReconnectGate({
    mayConnect: () => open.now,
    periodMs: 1000,
    client: () => client as unknown as MqttClient,
    ending: () => false,
    closedSeen: () => void seen.closedSeen++,
  });
  gate.connected();
  return { gate, seen };
}

describe('ReconnectGate.reconnectNow(silentSince)', () => {
  it('drops a connection that looks up but heard nothing since the gate was shut, and replays the subscriptions next', () => {
    const client = new FakeClient();
    const open = { now: true };
    const { gate, seen } = gateOn(client, open);
    gate.heard();
    const shutAt = performance.now() + 1; // the lease was lost after the last packet
    expect(gate.reconnectNow(shutAt)).toBe(true);
    expect(client.destroyed).toBe(1);
    expect(seen.closedSeen).toBe(1);
  });

  it('keeps a connection that heard from the broker since, one when no loss is given, and any while the gate is shut', () => {
    const client = new FakeClient();
    const open = { now: true };
    const { gate } = gateOn(client, open);
    const shutAt = performance.now();
    gate.heard();
    expect(gate.reconnectNow(shutAt)).toBe(false);
    expect(gate.reconnectNow()).toBe(false);
    open.now = false;
    expect(gate.reconnectNow(performance.now() + 1)).toBe(false);
    expect(client.destroyed).toBe(0);
    expect(client.reconnects).toBe(0);
  });
});

/** A keeper the test drives: it owns the lease while `owned` is set. */
class FakeKeeper extends EventEmitter<{
  acquired: (name: string) => void;
  lost: (name: string, reason: string) => void;
}> {
  owned = true;
  want(): void {}
  owns(): boolean {
    return this.owned;
  }
  async renewNow(): Promise<void> {}
}

describe('SessionClaim', () => {
  const LEASE = 'mqtt-session/relay-x-0';

  function claim() {
    const keeper = new FakeKeeper();
    const calls: Array<number | undefined> = [];
    let gate: () => boolean = () => false;
    const logs: string[] = [];
    new SessionClaim({
      keeper: keeper as SessionKeeper,
      lease: LEASE,
      transport: {
        setConnectGate: (fn) => void (gate = fn),
        reconnectNow: (since) => {
          calls.push(since);
          return since !== undefined;
        },
      },
      log: { info: (_: unknown, msg: string) => void logs.push(msg) } as never,
    });
    return { keeper, calls, gate: () => gate(), logs };
  }

  it('when the lease comes back after it was lost, asks the transport to make a silent connection again, from when it was lost', () => {
    const { keeper, calls, gate, logs } = claim();
    const before = performance.now();
    keeper.owned = false;
    keeper.emit('lost', LEASE, 'expired');
    keeper.emit('lost', LEASE, 'fenced'); // the first loss counts
    expect(gate()).toBe(false);
    expect(gate()).toBe(false);
    keeper.owned = true;
    keeper.emit('acquired', LEASE);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toBeGreaterThanOrEqual(before);
    expect(calls[0]).toBeLessThanOrEqual(performance.now());
    // Why it waited (once), and that it connected again.
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatch(/not reconnecting .* session lease/);
    expect(logs[1]).toMatch(/connecting again/);
  });

  it('a first acquisition, or another lease, restarts nothing', () => {
    const { keeper, calls } = claim();
    keeper.emit('acquired', LEASE);
    keeper.emit('lost', 'scheduler', 'expired');
    keeper.emit('acquired', LEASE);
    expect(calls).toEqual([undefined, undefined]);
  });
});
