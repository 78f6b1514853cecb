/**
 * One transport suite, run against every available broker (MQTT.js abstract_store style).
 * aedes 2.0.0-beta.1 refuses shared subscriptions; that one assertion is replaced on it by a check
 * that the refusal surfaces as a TransportError.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as mqttConnect, type IPublishPacket, type MqttClient } from 'mqtt';
import { TransportError } from '../../framework/relay/errors.js';
import {
  MqttTransport,
  type InboundMessage,
  type MessageHandler,
  type MqttTransportOptions,
} from '../../framework/relay/transport.js';
import { publishPacketSize } from '../../framework/relay/transport-packet-size.js';
import { SharedSubscriptionsUnsupportedError } from '../../framework/relay/transport-subscriptions.js';
import {
  getTestBroker,
  startPrivateBroker,
  testBrokers,
  uniqueName,
  type TestBroker,
} from '../support/broker.js';

const kinds = await testBrokers();
const WAIT_MS = 15_000;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Messages seen by a handler, awaited in order; waits fail the test instead of hanging. */
class Inbox {
  readonly messages: InboundMessage[] = [];
  private read = 0;
  private wake: (() => void) | undefined;

  readonly handler: MessageHandler = async (message) => {
    this.push(message);
  };

  push(message: InboundMessage): void {
    this.messages.push(message);
    this.wake?.();
  }

  async next(what = 'a message'): Promise<InboundMessage> {
    const deadline = Date.now() + WAIT_MS;
    while (this.read >= this.messages.length) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
    return this.messages[this.read++]!;
  }
}

/** The message after the first `seen` that `inbox` received. */
async function waitFor(inbox: Inbox, seen: number): Promise<InboundMessage> {
  const deadline = Date.now() + WAIT_MS;
  while (inbox.messages.length <= seen) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a message');
    await new Promise((r) => setTimeout(r, 20));
  }
  return inbox.messages[seen]!;
}

function until<T>(what: string, register: (resolve: (value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Reads Node's own record of TCP_NODELAY on a socket (net.Socket keeps it under kSetNoDelay). */
function noDelayOf(socket: net.Socket): boolean | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay');
  return key === undefined ? undefined : Boolean((socket as unknown as Record<symbol, unknown>)[key]);
}

function clientSocketsTo(port: number): net.Socket[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter(
    (h): h is net.Socket => h instanceof net.Socket && h.remotePort === port && !h.destroyed,
  );
}

describe.each(kinds)('MqttTransport against %s', (kind) => {
  let broker: TestBroker;
  let prefix: string;
  const open: Array<MqttTransport | MqttClient> = [];

  beforeAll(async () => {
    broker = await getTestBroker(kind);
  });
  afterAll(async () => {
    await broker.close();
  });
  beforeEach(() => {
    prefix = uniqueName('relay-test/transport');
  });
  afterEach(async () => {
    for (const c of open.splice(0)) {
      if (c instanceof MqttTransport) await c.end({ force: true });
      else await c.endAsync(true);
    }
  });

  function transport(options: Partial<MqttTransportOptions> & { clientId?: string } = {}): MqttTransport {
    const t = new MqttTransport({
      url: broker.url,
      clientId: uniqueName('relay-t'),
      reconnectPeriodMs: 100,
      ...options,
    });
    t.on('error', () => {}); // errors under test are asserted where they matter
    open.push(t);
    return t;
  }

  async function rawClient(clientId = uniqueName('relay-raw'), clean = true): Promise<MqttClient> {
    const c = mqttConnect(broker.url, { protocolVersion: 5, clientId, clean, reconnectPeriod: 0 });
    open.push(c);
    await until('raw client connect', (resolve) => c.once('connect', () => resolve(undefined)));
    return c;
  }

  /** MQTT 5 §3.3.1.1 requires DUP on a redelivery; aedes 2.0.0-beta.1 resends with DUP 0. */
  function expectRedeliveryDup(m: InboundMessage): void {
    if (kind === 'embedded') {
      console.log('[embedded] aedes 2.0.0-beta.1 redelivers without the DUP flag; DUP assertion skipped');
      return;
    }
    expect(m.dup).toBe(true);
  }

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

  test('held PUBACK: a rejected handler gets the message again and acknowledges it the second time', async () => {
    const topic = `${prefix}/inbox`;
    const seen: InboundMessage[] = [];
    let connects = 0;
    const a = transport();
    a.on('connect', () => connects++);
    a.onMessage(async (m) => {
      seen.push(m);
      if (seen.length === 1) throw new Error('database down');
    });
    await a.connect();
    await a.subscribe(topic, { qos: 1 });
    const b = transport();
    await b.connect();
    await b.publish(topic, text('hello'), { qos: 1 });

    await until<void>('redelivery', (resolve) => {
      const poll = setInterval(() => {
        if (seen.length >= 2) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    expect(seen.map((m) => str(m.payload))).toEqual(['hello', 'hello']);
    expectRedeliveryDup(seen[1]!);
    expect(connects).toBeGreaterThanOrEqual(2);

    // The reconnect made by the transport also has Nagle off.
    const sockets = clientSocketsTo(Number(new URL(broker.url).port));
    for (const s of sockets) expect(noDelayOf(s)).toBe(true);

    // Acknowledged the second time: a later session gets only new traffic.
    await b.publish(topic, text('next'), { qos: 1 });
    await until<void>('next', (resolve) => {
      const poll = setInterval(() => {
        if (seen.length >= 3) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    expect(str(seen[2]!.payload)).toBe('next');
  });

  test('a pending handler blocks neither other messages nor our own publishes', async () => {
    const topic = `${prefix}/busy`;
    const clientId = uniqueName('relay-busy');
    let release: (() => void) | undefined;
    const inbox = new Inbox();
    const a = transport({ clientId });
    a.onMessage(async (m) => {
      if (str(m.payload) === 'slow') await new Promise<void>((resolve) => (release = resolve));
      inbox.push(m);
    });
    await a.connect();
    await a.subscribe(topic, { qos: 1 });
    const b = transport();
    await b.connect();
    await b.publish(topic, text('slow'), { qos: 1 });
    await b.publish(topic, text('fast'), { qos: 1 });
    expect(str((await inbox.next('fast')).payload)).toBe('fast');
    await a.publish(`${prefix}/elsewhere`, text('x'), { qos: 1 });
    release!();
    expect(str((await inbox.next('slow')).payload)).toBe('slow');

    // Both were acknowledged (in arrival order): the next session of this id redelivers nothing.
    await a.end();
    const again = new Inbox();
    const a2 = transport({ clientId });
    a2.onMessage(again.handler);
    expect(await a2.connect()).toEqual({ sessionPresent: true });
    await b.publish(topic, text('marker'), { qos: 1 });
    expect(str((await again.next('marker')).payload)).toBe('marker');
  });

  test('a message whose handler is pending at a forced disconnect is redelivered to the same client id', async () => {
    const topic = `${prefix}/inbox`;
    const clientId = uniqueName('relay-crash');
    let started: (() => void) | undefined;
    const startedP = until<void>('first handler', (resolve) => (started = resolve));
    const a = transport({ clientId });
    a.onMessage(() => {
      started!();
      return new Promise<void>(() => {}); // never settles: the process "crashed" mid-handler
    });
    await a.connect();
    await a.subscribe(topic, { qos: 1 });
    const b = transport();
    await b.connect();
    await b.publish(topic, text('survive'), { qos: 1 });
    await startedP;
    await a.end({ force: true });

    const inbox = new Inbox();
    const a2 = transport({ clientId });
    a2.onMessage(inbox.handler);
    expect(await a2.connect()).toEqual({ sessionPresent: true });
    const m = await inbox.next('the redelivery');
    expect(str(m.payload)).toBe('survive');
    expectRedeliveryDup(m);
  });

  test('persistent session: a QoS 1 message published while away is delivered on return', async () => {
    const topic = `${prefix}/away`;
    const clientId = uniqueName('relay-away');
    const a = transport({ clientId });
    a.onMessage(async () => {});
    expect(await a.connect()).toEqual({ sessionPresent: false });
    await a.subscribe(topic, { qos: 1 });
    await a.end();

    const b = transport();
    await b.connect();
    await b.publish(topic, text('while you were out'), { qos: 1 });

    const inbox = new Inbox();
    const a2 = transport({ clientId });
    a2.onMessage(inbox.handler);
    expect(await a2.connect()).toEqual({ sessionPresent: true });
    expect(str((await inbox.next('the queued message')).payload)).toBe('while you were out');
  });

  test('resubscribes by itself when the broker reports sessionPresent=false', async () => {
    const topic = `${prefix}/resub`;
    const clientId = uniqueName('relay-resub');
    const inbox = new Inbox();
    // Session expiry 0: the broker forgets the session as soon as the connection drops.
    const a = transport({ clientId, sessionExpirySeconds: 0 });
    a.onMessage(inbox.handler);
    await a.connect();
    await a.subscribe(topic, { qos: 1 });

    const reconnected = until<{ sessionPresent: boolean }>('reconnect', (resolve) =>
      a.once('connect', resolve),
    );
    // Another connection with the same id and clean start takes the session over and wipes it.
    const intruder = await rawClient(clientId, true);
    await intruder.endAsync();
    expect(await reconnected).toEqual({ sessionPresent: false });

    const b = transport();
    await b.connect();
    await b.publish(topic, text('still here'), { qos: 1 });
    expect(str((await inbox.next('a message after resubscribe')).payload)).toBe('still here');
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

  test('No Local: own publications are not delivered back', async () => {
    const topic = `${prefix}/nl`;
    const inbox = new Inbox();
    const a = transport();
    a.onMessage(inbox.handler);
    await a.connect();
    await a.subscribe(topic, { qos: 1, noLocal: true });
    await a.publish(topic, text('mine'), { qos: 1 });
    const b = transport();
    await b.connect();
    await b.publish(topic, text('theirs'), { qos: 1 });
    expect(str((await inbox.next('theirs')).payload)).toBe('theirs');
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

  test('shared subscription splits messages between two transports', async () => {
    const topic = `${prefix}/shared`;
    const shared = `$share/${uniqueName('g')}/${topic}`;
    const one = new Inbox();
    const two = new Inbox();
    const t1 = transport();
    t1.onMessage(one.handler);
    await t1.connect();
    const t2 = transport();
    t2.onMessage(two.handler);
    await t2.connect();

    if (kind === 'embedded') {
      console.log(
        '[embedded] aedes 2.0.0-beta.1 refuses $share subscriptions (0x9E); asserting the refusal instead',
      );
      await expect(t1.subscribe(shared, { qos: 1 })).rejects.toThrow(TransportError);
      return;
    }
    await t1.subscribe(shared, { qos: 1 });
    await t2.subscribe(shared, { qos: 1 });
    const p = transport();
    await p.connect();
    const n = 20;
    for (let i = 0; i < n; i++) await p.publish(topic, text(String(i)), { qos: 1 });
    await until<void>('all shared messages', (resolve) => {
      const poll = setInterval(() => {
        if (one.messages.length + two.messages.length >= n) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    expect(one.messages.length).toBeGreaterThan(0);
    expect(two.messages.length).toBeGreaterThan(0);
    const all = [...one.messages, ...two.messages].map((m) => Number(str(m.payload))).sort((x, y) => x - y);
    expect(all).toEqual([...Array(n).keys()]);
  });

  test('shareGroup: two transports with different client ids split a stream, each message exactly once', async () => {
    const topic = `${prefix}/share-group`;
    const shareGroup = uniqueName('replicas');
    const one = new Inbox();
    const two = new Inbox();
    const t1 = transport({ shareGroup, clientId: uniqueName('relay-replica-0') });
    t1.onMessage(one.handler);
    const t2 = transport({ shareGroup, clientId: uniqueName('relay-replica-1') });
    t2.onMessage(two.handler);

    if (kind === 'embedded') {
      // aedes advertises Shared Subscription Available = 0: start fails, naming the fix.
      const refusal = t1.connect();
      await expect(refusal).rejects.toThrow(SharedSubscriptionsUnsupportedError);
      await expect(refusal).rejects.toThrow(/such as Mosquitto/);
      expect(t1.connected).toBe(false);
      return;
    }
    await t1.connect();
    await t2.connect();
    // No Local is left out of the shared filter (a Protocol Error there) instead of failing.
    await t1.subscribe(topic, { qos: 1, shared: true, noLocal: true });
    await t2.subscribe(topic, { qos: 1, shared: true });
    const p = transport();
    await p.connect();
    const n = 100;
    await Promise.all(Array.from({ length: n }, (_, i) => p.publish(topic, text(String(i)), { qos: 1 })));
    await until<void>('all shared messages', (resolve) => {
      const poll = setInterval(() => {
        if (one.messages.length + two.messages.length >= n) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive now
    expect(one.messages.length).toBeGreaterThan(0);
    expect(two.messages.length).toBeGreaterThan(0);
    const all = [...one.messages, ...two.messages];
    // Received under the topic it was published on, not the $share/ filter.
    expect(new Set(all.map((m) => m.topic))).toEqual(new Set([topic]));
    expect(all.map((m) => Number(str(m.payload))).sort((x, y) => x - y)).toEqual([...Array(n).keys()]);

    // Unsubscribing one replica leaves the whole stream to the other.
    await t1.unsubscribe(topic);
    const before = two.messages.length;
    await p.publish(topic, text('after'), { qos: 1 });
    expect(str((await waitFor(two, before)).payload)).toBe('after');
    expect(one.messages.length + before).toBe(n);
  });
});

describe('MqttTransport without a broker', () => {
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

  /** Counts the reconnect attempts MQTT.js makes for `t` (a leaked reconnect timer keeps making them). */
  function reconnects(t: MqttTransport): { count: number } {
    const seen = { count: 0 };
    t.on('reconnect', () => seen.count++);
    t.on('offline', () => seen.count++);
    return seen;
  }

  async function closedPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  test('connect() rejects with a TransportError when nothing listens, and stops for good', async () => {
    const port = await closedPort();
    const t = new MqttTransport({
      url: `mqtt://127.0.0.1:${port}`,
      clientId: uniqueName('relay-none'),
      reconnectPeriodMs: 20,
    });
    t.on('error', () => {});
    const seen = reconnects(t);
    await expect(t.connect()).rejects.toThrow(TransportError);
    expect(t.connected).toBe(false);
    // No end() yet: a failed connect() must not leave a reconnect timer behind by itself.
    await sleep(200);
    expect(seen.count).toBe(0);
    await t.end();
    await t.end();
    await sleep(100);
    expect(seen.count).toBe(0);
  });

  test('end() while the first CONNACK is outstanding rejects connect() and leaves no timer', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const t = new MqttTransport({
        url: `mqtt://127.0.0.1:${port}`,
        clientId: uniqueName('relay-mute'),
        reconnectPeriodMs: 20,
        connectTimeoutMs: 60_000,
      });
      t.on('error', () => {});
      const seen = reconnects(t);
      const connecting = t.connect();
      await until<void>('the TCP connection', (resolve) => {
        const poll = setInterval(() => {
          if (sockets.length > 0) {
            clearInterval(poll);
            resolve();
          }
        }, 5);
      });
      await t.end();
      await expect(connecting).rejects.toThrow(TransportError);
      await sleep(200);
      expect(seen.count).toBe(0);
      expect(sockets).toHaveLength(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('end() while reconnecting to a vanished broker stops the reconnect loop', async () => {
    const broker = await startPrivateBroker('embedded');
    const t = new MqttTransport({
      url: broker.url,
      clientId: uniqueName('relay-gone'),
      reconnectPeriodMs: 20,
    });
    t.on('error', () => {});
    await t.connect();
    const offline = until<void>('offline', (resolve) => t.once('offline', () => resolve()));
    await broker.close();
    await offline;
    let attempts = 0;
    t.on('reconnect', () => attempts++);
    await until<void>('a few reconnect attempts', (resolve) => {
      const poll = setInterval(() => {
        if (attempts >= 3) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    await t.end();
    const after = attempts;
    await sleep(200);
    expect(attempts).toBe(after);
  });

  test('publish before connect() is a TransportError', async () => {
    const t = new MqttTransport({ url: 'mqtt://127.0.0.1:1', clientId: uniqueName('relay-none') });
    await expect(t.publish('a/b', new Uint8Array(1))).rejects.toThrow(TransportError);
  });
});
