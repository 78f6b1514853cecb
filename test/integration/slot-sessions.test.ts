/**
 * Draining a dead share group member's broker session through Mosquitto (slot-sessions.ts, issue
 * 13): what Mosquitto queued in the persistent session of a member that is gone is handed to the
 * drain, and the session is forgotten afterwards (a new connection under that client id finds no
 * session, so the broker no longer routes a share to it).
 */
import { createServer, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { sessionLease } from '../../framework/relay/broker-client-id.js';
import { MemoryLeaseStore } from '../../framework/relay/memory-lease-store.js';
import { MqttTransport } from '../../framework/relay/transport.js';
import { claimSession, SlotSessions } from '../../framework/relay/slot-sessions.js';
import { DeadReplicas } from '../../framework/relay/dead-replicas.js';
import { testBrokers, uniqueName } from '../support/broker.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const URL = 'mqtt://127.0.0.1:1883';

(hasMosquitto ? test : test.skip)(
  "a dead member's queued share is processed by the drain, and its session is forgotten",
  async () => {
    const group = uniqueName('bots');
    const topic = `${uniqueName('slots')}/inbox`;
    const deadId = uniqueName('dead-slot');
    const dead = new MqttTransport({ url: URL, clientId: deadId, shareGroup: group });
    dead.onMessage(async () => undefined);
    await dead.connect();
    await dead.subscribe(topic, { qos: 1, shared: true });
    // Gone without unsubscribing (as after SIGKILL): the session stays, with its shared subscription.
    await dead.end({ force: true });

    const sender = new MqttTransport({ url: URL, clientId: uniqueName('sender') });
    await sender.connect();
    const sent = ['a', 'b', 'c', 'd'];
    for (const text of sent) await sender.publish(topic, new TextEncoder().encode(text), { qos: 1 });
    await sender.end();

    const received: string[] = [];
    const slots = new SlotSessions({
      dead: new DeadReplicas({
        registry: { listReplicas: async () => [] },
        self: 'self',
        staleAfterMs: 15_000,
      }),
      owns: () => true,
      clientIdOf: () => deadId,
      open: (clientId) => new MqttTransport({ url: URL, clientId, shareGroup: group, reconnectPeriodMs: 0 }),
      receive: async (m) => void received.push(new TextDecoder().decode(m.payload)),
      sharedFilters: () => [`$share/${group}/${topic}`],
      quietMs: 500,
      log: pino({ level: 'silent' }),
    });
    expect(await slots.drain(deadId)).toEqual({ clientId: deadId, messages: sent.length, forgotten: true });
    expect(received.sort()).toEqual(sent);

    // The broker forgot that member: no session under its client id any more.
    const again = new MqttTransport({ url: URL, clientId: deadId, shareGroup: group });
    again.onMessage(async () => undefined);
    try {
      expect(await again.connect()).toEqual({ sessionPresent: false });
    } finally {
      await again.end({ forgetSession: true });
    }
  },
  30_000,
);

test('a drain whose socket closes before CONNACK settles as a failure, releases the lease, and the next sweep tries again', async () => {
  // Accepts and closes at once: MQTT.js gets no CONNACK, only a closed socket.
  const accepted: number[] = [];
  const server = createServer((socket) => {
    accepted.push(accepted.length);
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const leases = new MemoryLeaseStore();
  const deadId = uniqueName('closing-slot');
  const slots = new SlotSessions({
    dead: new DeadReplicas({
      registry: {
        listReplicas: async () => [{ replicaId: 'bots/3', live: false, lastSeen: 1, startedAt: 0 }],
      },
      self: 'self',
      staleAfterMs: 15_000,
    }),
    owns: () => true,
    clientIdOf: () => deadId,
    claim: (clientId) => claimSession(leases, sessionLease(clientId), 'self', 15_000),
    open: (clientId) =>
      new MqttTransport({ url: `mqtt://127.0.0.1:${port}`, clientId, reconnectPeriodMs: 0 }),
    receive: async () => undefined,
    sharedFilters: () => [],
    log: pino({ level: 'silent' }),
  });
  try {
    expect(await slots.sweep()).toEqual([]);
    // Released: another holder (the replica itself, say) can take the session lease now.
    expect(await leases.listLeases()).toEqual([]);
    expect(await slots.sweep()).toEqual([]);
    expect(accepted).toEqual([0, 1]);
  } finally {
    await slots.stop();
    await new Promise((r) => server.close(r));
  }
}, 20_000);
