/**
 * The transport suite, part two (see transport.test.ts): held PUBACKs, pending handlers, redelivery
 * after a forced disconnect, persistent sessions and resubscription.
 */
import type { InboundMessage } from '../../framework/relay/transport.js';
import { testBrokers, uniqueName, type TestBroker } from '../support/broker.js';
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
  const { transport, rawClient, expectRedeliveryDup } = suite;
  let broker: TestBroker;
  let prefix: string;
  beforeEach(() => {
    broker = suite.broker;
    prefix = suite.prefix;
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
});
