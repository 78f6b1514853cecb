/**
 * One transport suite, run against every available broker (MQTT.js abstract_store style): delivery,
 * retained messages, size limits and message expiry. The same suite goes on in transport-acks
 * (held PUBACKs, sessions), transport-subscription-options (No Local, shared subscriptions) and
 * transport-offline (no broker at all).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { IPublishPacket } from 'mqtt';
import { TransportError } from '../../framework/relay/errors.js';
import { MqttTransport } from '../../framework/relay/transport.js';
import { publishPacketSize } from '../../framework/relay/transport-packet-size.js';
import { startPrivateBroker, testBrokers, uniqueName, type TestBroker } from '../support/broker.js';
import {
  clientSocketsTo,
  Inbox,
  noDelayOf,
  str,
  text,
  until,
  useTransportSuite,
} from '../support/transport-suite.js';

const kinds = await testBrokers();

describe.each(kinds)('MqttTransport against %s', (kind) => {
  const suite = useTransportSuite(kind);
  const { transport, rawClient } = suite;
  let broker: TestBroker;
  let prefix: string;
  beforeEach(() => {
    broker = suite.broker;
    prefix = suite.prefix;
  });

  test('QoS 1 round trip between two transports', async () => {
    const inbox = new Inbox();
    const a = transport();
    a.onMessage(inbox.handler);
    await a.connect();
    await a.subscribe(`${prefix}/x`, { qos: 1 });
    const b = transport();
    await b.connect();
    await b.publish(`${prefix}/x`, new Uint8Array([0, 1, 2, 255]), { qos: 1 });
    const m = await inbox.next();
    expect(m.topic).toBe(`${prefix}/x`);
    expect([...m.payload]).toEqual([0, 1, 2, 255]);
    expect(m.qos).toBe(1);
    expect(m.dup).toBe(false);
  });

  /** Mean QoS 1 request/reply time between two fresh transports on `url`; closes them after. */
  async function pingPong(url: string, rounds: number): Promise<{ meanMs: number; sockets: net.Socket[] }> {
    const ping = `${prefix}/ping`;
    const pong = `${prefix}/pong`;
    const made: MqttTransport[] = [];
    const make = (): MqttTransport => {
      const t = new MqttTransport({ url, clientId: uniqueName('relay-pp'), reconnectPeriodMs: 100 });
      t.on('error', () => {});
      made.push(t);
      return t;
    };
    try {
      const b = make();
      // The handler publishes and awaits that PUBACK while its own PUBACK is still held: no deadlock.
      b.onMessage(async (m) => b.publish(pong, m.payload, { qos: 1 }));
      await b.connect();
      await b.subscribe(ping, { qos: 1 });
      let arrived: (() => void) | undefined;
      const a = make();
      a.onMessage(async () => arrived?.());
      await a.connect();
      await a.subscribe(pong, { qos: 1 });
      let total = 0;
      for (let i = 0; i < rounds; i++) {
        const back = until<void>(`pong ${i}`, (resolve) => (arrived = resolve));
        const t0 = performance.now();
        await a.publish(ping, text(String(i)), { qos: 1 });
        await back;
        total += performance.now() - t0;
      }
      return { meanMs: total / rounds, sockets: clientSocketsTo(Number(new URL(url).port)) };
    } finally {
      for (const t of made) await t.end({ force: true });
    }
  }

  test('QoS 1 ping-pong of 50 messages; TCP_NODELAY on every socket', async () => {
    const shared = await pingPong(broker.url, 50);
    console.log(
      `[${kind}] QoS 1 ping-pong on ${broker.url}: mean ${shared.meanMs.toFixed(3)} ms over 50 round trips`,
    );
    expect(shared.sockets.length).toBeGreaterThanOrEqual(2);
    for (const s of shared.sockets) expect(noDelayOf(s)).toBe(true);

    if (kind === 'mosquitto') {
      // The shared Mosquitto config lacks set_tcp_nodelay, so its side still runs Nagle; compare
      // with a Mosquitto configured the way we ship it.
      const own = await startPrivateBroker('mosquitto');
      try {
        const tuned = await pingPong(own.url, 50);
        console.log(
          `[mosquitto set_tcp_nodelay] QoS 1 ping-pong: mean ${tuned.meanMs.toFixed(3)} ms over 50 round trips`,
        );
      } finally {
        await own.close();
      }
    }
  });

  test('retained message reaches a late subscriber and an empty retained payload clears it', async () => {
    const topic = `${prefix}/keys`;
    const pub = transport();
    await pub.connect();
    await pub.publish(topic, text('bundle-1'), { qos: 1, retain: true });

    const late = new Inbox();
    const s1 = transport();
    s1.onMessage(late.handler);
    await s1.connect();
    await s1.subscribe(topic, { qos: 1 });
    const got = await late.next('the retained message');
    expect(str(got.payload)).toBe('bundle-1');
    expect(got.retain).toBe(true);

    await pub.publish(topic, new Uint8Array(0), { qos: 1, retain: true });
    const after = new Inbox();
    const s2 = transport();
    s2.onMessage(after.handler);
    await s2.connect();
    await s2.subscribe(topic, { qos: 1 });
    // A retained copy would be sent at SUBSCRIBE, before anything published afterwards.
    await pub.publish(topic, text('marker'), { qos: 1 });
    const first = await after.next('the marker');
    expect(str(first.payload)).toBe('marker');
    expect(first.retain).toBe(false);
  });

  test('oversize publish is rejected before sending (own limit)', async () => {
    const topic = `${prefix}/big`;
    const inbox = new Inbox();
    const s = transport();
    s.onMessage(inbox.handler);
    await s.connect();
    await s.subscribe(topic, { qos: 1 });
    const p = transport({ maxPayloadBytes: 100 });
    await p.connect();
    await expect(p.publish(topic, new Uint8Array(101))).rejects.toThrow(TransportError);
    await p.publish(topic, new Uint8Array(100));
    expect((await inbox.next('the 100-byte message')).payload.length).toBe(100);
  });

  test("oversize publish is rejected before sending (broker's Maximum Packet Size, exact boundary)", async () => {
    const limit = 1024;
    const limited = await startPrivateBroker(kind, { maxPacketSize: limit });
    const made: MqttTransport[] = [];
    try {
      const make = (): MqttTransport => {
        const t = new MqttTransport({
          url: limited.url,
          clientId: uniqueName('relay-mps'),
          reconnectPeriodMs: 100,
        });
        t.on('error', () => {});
        made.push(t);
        return t;
      };
      const topic = `${prefix}/big`;
      const inbox = new Inbox();
      const s = make();
      s.onMessage(inbox.handler);
      await s.connect();
      await s.subscribe(topic, { qos: 1 });
      const p = make();
      await p.connect();

      const topicBytes = Buffer.byteLength(topic);
      let fits = 0;
      while (publishPacketSize(topicBytes, fits + 1, 1, false) <= limit) fits++;
      expect(publishPacketSize(topicBytes, fits, 1, false)).toBe(limit);

      const error = await p.publish(topic, new Uint8Array(fits + 1)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransportError);
      expect(String((error as Error).message)).toMatch(/Maximum Packet Size 1024/);
      // Exactly at the limit: the broker accepts it (it would drop the connection otherwise).
      await p.publish(topic, new Uint8Array(fits));
      expect((await inbox.next('the packet at the limit')).payload.length).toBe(fits);
      expect(p.connected).toBe(true);
    } finally {
      for (const t of made) await t.end({ force: true });
      await limited.close();
    }
  });

  test('message expiry arrives as a property at a raw subscriber and at a transport', async () => {
    const topic = `${prefix}/exp`;
    const raw = await rawClient();
    const rawGot = until<IPublishPacket>('raw message', (resolve) =>
      raw.on('message', (_t, _p, packet) => resolve(packet)),
    );
    await raw.subscribeAsync(topic, { qos: 1 });
    const inbox = new Inbox();
    const s = transport();
    s.onMessage(inbox.handler);
    await s.connect();
    await s.subscribe(topic, { qos: 1 });
    const p = transport();
    await p.connect();
    await p.publish(topic, text('short-lived'), { qos: 1, messageExpirySeconds: 120 });
    const interval = (await rawGot).properties?.messageExpiryInterval;
    expect(interval).toBeGreaterThan(0);
    expect(interval).toBeLessThanOrEqual(120);
    const m = await inbox.next();
    expect(m.properties.messageExpiryInterval).toBeGreaterThan(0);
    expect(m.properties.messageExpiryInterval).toBeLessThanOrEqual(120);
  });
});
