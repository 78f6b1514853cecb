/**
 * A gated transport (transport-reconnect-gate.ts) against a real broker: reconnectNow(silentSince)
 * drops a connection that heard nothing since `silentSince` and the usual reconnect path makes it
 * again, subscriptions included (a drain may have unsubscribed them meanwhile); one that heard from
 * the broker since is kept. The MQTT.js parts this relies on (stream.destroy() ends in 'close',
 * 'packetreceive') are checked here with the pinned version.
 */
import { MqttTransport } from '../../framework/relay/transport.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { Inbox, text, until, waitFor } from '../support/transport-suite.js';

let broker: TestBroker;
const transports: MqttTransport[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
});
afterEach(async () => {
  for (const t of transports.splice(0)) await t.end({ force: true, forgetSession: true });
});
afterAll(async () => {
  await broker.close();
});

function transport(gated: boolean): MqttTransport {
  const t = new MqttTransport({ url: broker.url, clientId: uniqueName('relay-gate'), reconnectPeriodMs: 50 });
  t.on('error', () => undefined);
  if (gated) t.setConnectGate(() => true);
  transports.push(t);
  return t;
}

test('a connection silent since the gate was shut is made again, and its subscriptions work after', async () => {
  const topic = uniqueName('gate/t');
  const t = transport(true);
  const inbox = new Inbox();
  t.onMessage(inbox.handler);
  await t.connect();
  await t.subscribe(topic, { qos: 1 });
  const pub = transport(false);
  await pub.connect();
  // The lease was lost after the last packet (the SUBACK) came.
  const silentSince = performance.now();
  const closed = until<void>('the dropped connection to close', (done) => t.once('close', () => done()));
  const back = until<void>('the connection to come back', (done) => t.once('connect', () => done()));
  expect(t.reconnectNow(silentSince)).toBe(true);
  await closed;
  await back;
  expect(t.connected).toBe(true);
  await pub.publish(topic, text('after'), { qos: 1 });
  expect(new TextDecoder().decode((await waitFor(inbox, 0)).payload)).toBe('after');
});

test('a connection that heard from the broker since is kept', async () => {
  const topic = uniqueName('gate/k');
  const t = transport(true);
  const inbox = new Inbox();
  t.onMessage(inbox.handler);
  await t.connect();
  const silentSince = performance.now();
  await t.subscribe(topic, { qos: 1 }); // its SUBACK comes after silentSince
  let closes = 0;
  t.on('close', () => closes++);
  expect(t.reconnectNow(silentSince)).toBe(false);
  expect(t.reconnectNow()).toBe(false);
  await new Promise((r) => setTimeout(r, 200));
  expect(closes).toBe(0);
  expect(t.connected).toBe(true);
});
