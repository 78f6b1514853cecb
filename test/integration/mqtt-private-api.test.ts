/**
 * The MQTT.js behaviour MqttTransport relies on beyond its public API (mqtt is pinned exactly in
 * package.json for this reason): when an upgrade changes any of it, this test fails before the
 * transport starts losing or duplicating messages.
 *
 * 1. handleMessage's callback called with an error sends no PUBACK, and the client still reads
 *    the packets that follow (our own PUBACKs, further PUBLISHes);
 * 2. `_sendPacket({ cmd: 'puback', messageId, reasonCode: 0 })` sends a PUBACK the broker honours:
 *    the message is not redelivered after a reconnect.
 */
import { connect, type IPublishPacket, type MqttClient } from 'mqtt';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';

interface Session {
  client: MqttClient;
  arrived: IPublishPacket[];
}

let broker: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
});

afterAll(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  await broker?.close();
});

const text = (p: IPublishPacket): string => Buffer.from(p.payload as Uint8Array).toString();

/** A persistent-session client whose handleMessage never acknowledges (as MqttTransport does). */
async function deferringClient(clientId: string, topic: string): Promise<Session> {
  const client = connect(broker.url, {
    clientId,
    protocolVersion: 5,
    clean: false,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 300 },
  });
  clients.push(client);
  const arrived: IPublishPacket[] = [];
  client.handleMessage = (packet, callback) => {
    arrived.push(packet);
    callback(new Error('PUBACK deferred'));
  };
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, arrived };
}

async function until(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Drops the connection without DISCONNECT, as a crash would; the broker keeps the session. */
async function drop(s: Session): Promise<void> {
  await s.client.endAsync(true);
}

test('a callback error sends no PUBACK and keeps reading; _sendPacket PUBACK is honoured', async () => {
  const topic = uniqueName('relay-mqttjs');
  const clientId = uniqueName('relay-mqttjs');
  const publisher = connect(broker.url, { clientId: uniqueName('pub'), protocolVersion: 5 });
  clients.push(publisher);
  await new Promise<void>((resolve) => publisher.once('connect', () => resolve()));

  const first = await deferringClient(clientId, topic);
  await publisher.publishAsync(topic, 'one', { qos: 1 });
  await publisher.publishAsync(topic, 'two', { qos: 1 });
  // Both arrive although neither was acknowledged: the error released MQTT.js's inbound pipeline.
  await until('two deliveries', () => first.arrived.length === 2);
  // Our own publishes still complete (their PUBACKs are read while the inbound ones are held).
  await first.client.publishAsync(`${topic}/own`, 'mine', { qos: 1 });
  await drop(first);

  // Nothing was acknowledged: the broker redelivers both to the same client id.
  const second = await deferringClient(clientId, topic);
  await until('redelivery', () => second.arrived.length === 2);
  expect(second.arrived.map(text)).toEqual(['one', 'two']);
  // Acknowledge only "one", by hand, the way MqttTransport's ack queue does.
  const one = second.arrived[0]!;
  const sendPacket = (second.client as unknown as { _sendPacket?: unknown })._sendPacket;
  expect(typeof sendPacket).toBe('function');
  (second.client as unknown as { _sendPacket(p: object): void })._sendPacket({
    cmd: 'puback',
    messageId: one.messageId,
    reasonCode: 0,
  });
  // A QoS 1 round trip on the same connection: the PUBACK above was written before it.
  await second.client.publishAsync(`${topic}/own`, 'flush', { qos: 1 });
  await drop(second);

  const third = await deferringClient(clientId, topic);
  await publisher.publishAsync(topic, 'marker', { qos: 1 });
  await until('the marker', () => third.arrived.some((p) => text(p) === 'marker'));
  // "one" was acknowledged through _sendPacket and is gone; "two" never was and comes again.
  expect(third.arrived.map(text)).toEqual(['two', 'marker']);
});
