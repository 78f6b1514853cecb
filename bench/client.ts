/**
 * End-to-end figures for RelayClient through a real broker (a private Mosquitto when installed,
 * else the embedded one): first-contact latency (bundle fetch, MLS create, PoW, Welcome,
 * join) and steady-state one-way latency with access tokens, against the raw transport's QoS 1
 * one-way latency measured in the same run.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MemoryRelayStore, MqttTransport, RelayClient } from '../framework/relay/index.js';
import { pickBroker } from './broker.js';
import { heading, note, report } from './harness.js';

async function rawOneWayMs(url: string, count: number): Promise<number> {
  const id = randomBytes(4).toString('hex');
  const topic = `bench-${id}/raw`;
  const a = new MqttTransport({ url, clientId: `bench-a-${id}`, sessionExpirySeconds: 0 });
  const b = new MqttTransport({ url, clientId: `bench-b-${id}`, sessionExpirySeconds: 0 });
  let arrived: (() => void) | undefined;
  b.onMessage(async () => arrived?.());
  await Promise.all([a.connect(), b.connect()]);
  await b.subscribe(topic, { qos: 1 });
  const payload = randomBytes(600);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const got = new Promise<void>((r) => (arrived = r));
    const start = performance.now();
    await a.publish(topic, payload, { qos: 1 });
    await got;
    total += performance.now() - start;
  }
  await Promise.all([a.end(), b.end()]);
  return total / count;
}

async function client(url: string, prefix: string): Promise<RelayClient> {
  const c = await RelayClient.create({ store: new MemoryRelayStore(), broker: { url }, topicPrefix: prefix });
  await c.start();
  return c;
}

function nextMessage(c: RelayClient): Promise<void> {
  return new Promise((resolve) => c.once('message', () => resolve()));
}

export async function run(): Promise<void> {
  const broker = await pickBroker();
  note(`broker: ${broker.kind} at ${broker.url}`);
  try {
    const raw = await rawOneWayMs(broker.url, 200);
    const baseline = { name: 'raw QoS 1 one-way', value: raw };
    heading('transport');
    report('raw QoS 1 publish → delivery (600 B)', raw, 'ms');

    heading('first contact (PoW 18 bits), 5 fresh pairs');
    const prefix = `bench-${randomBytes(4).toString('hex')}`;
    let firstTotal = 0;
    const pairs: RelayClient[] = [];
    for (let i = 0; i < 5; i++) {
      const [alice, bob] = [await client(broker.url, prefix), await client(broker.url, prefix)];
      pairs.push(alice, bob);
      const got = nextMessage(bob);
      const start = performance.now();
      await alice.send(bob.userId, 'hello');
      await got;
      firstTotal += performance.now() - start;
    }
    report('first contact: send → peer receives', firstTotal / 5, 'ms', baseline);

    heading('established session (access tokens)');
    const [alice, bob] = [pairs[0]!, pairs[1]!];
    const count = 300;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const got = nextMessage(bob);
      const start = performance.now();
      await alice.send(bob.userId, `m${i}`);
      await got;
      total += performance.now() - start;
    }
    report('message: send → peer receives', total / count, 'ms', baseline);
    report('sequential messages/s, one pair', 1000 / (total / count), 'msg/s');
    await Promise.all(pairs.map((c) => c.stop()));
  } finally {
    await broker.close();
  }
}
