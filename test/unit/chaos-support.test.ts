/**
 * The replica chaos test's helpers (test/support): the publish gate must drop exactly the
 * replica's PUBLISH packets while shut, whatever the TCP chunking, and pass everything else; the
 * seeded random source must replay a run from its seed.
 */
import net from 'node:net';
import { startPublishGate, type PublishGate } from '../support/publish-gate.js';
import { chaosSeed, seededRandom } from '../support/seeded-random.js';

/** An MQTT packet: fixed header byte, remaining length (variable byte integer), body. */
function packet(first: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), body]);
}
const publish = (qos: number, payloadBytes: number) =>
  packet(
    0x30 | (qos << 1),
    Buffer.concat([Buffer.from([0, 1, 0x74, 0, 7]), Buffer.alloc(payloadBytes, 0x61)]),
  );
const puback = (id: number) => packet(0x40, Buffer.from([0, id]));

async function until(what: string, done: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('publish gate', () => {
  let broker: net.Server;
  let atBroker: net.Socket;
  let gate: PublishGate;
  let client: net.Socket;
  let brokerGot: Buffer;
  let clientGot: Buffer;

  beforeEach(async () => {
    brokerGot = Buffer.alloc(0);
    clientGot = Buffer.alloc(0);
    const accepted = new Promise<net.Socket>((resolve) => {
      broker = net.createServer((s) => {
        s.on('data', (d: Buffer) => (brokerGot = Buffer.concat([brokerGot, d])));
        resolve(s);
      });
    });
    await new Promise<void>((r) => broker.listen(0, '127.0.0.1', r));
    gate = await startPublishGate((broker.address() as net.AddressInfo).port);
    client = net.connect(Number(new URL(gate.url).port), '127.0.0.1');
    client.on('data', (d: Buffer) => (clientGot = Buffer.concat([clientGot, d])));
    atBroker = await accepted;
  });
  afterEach(async () => {
    client.destroy();
    await gate.close();
    await new Promise((r) => broker.close(r));
  });

  /** Writes `bytes` one byte at a time: packets must be reassembled across chunks. */
  async function trickle(bytes: Buffer): Promise<void> {
    for (const b of bytes) {
      client.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
  }

  test('open, it passes every packet unchanged; shut, it drops only the PUBLISH packets', async () => {
    const before = Buffer.concat([publish(1, 300), puback(1)]); // 300 bytes: a two-byte length
    await trickle(before);
    await until('the open gate passing both', () => brokerGot.length === before.length);
    expect(brokerGot.equals(before)).toBe(true);

    gate.shut();
    await trickle(Buffer.concat([publish(1, 10), puback(2), publish(0, 200)]));
    await until('the PUBACK through the shut gate', () => brokerGot.length === before.length + 4);
    expect(brokerGot.subarray(before.length).equals(puback(2))).toBe(true);
    expect([gate.dropped, gate.acked]).toEqual([2, 2]);

    gate.open();
    await trickle(publish(1, 5));
    await until(
      'a PUBLISH after reopening',
      () => brokerGot.length === before.length + 4 + publish(1, 5).length,
    );
    expect(gate.dropped).toBe(2);
  });

  test("counts the broker's QoS 1 PUBLISH packets to the replica and passes them through", async () => {
    const sent = Buffer.concat([publish(1, 3), publish(0, 3), publish(1, 500)]);
    atBroker.write(sent.subarray(0, 7));
    atBroker.write(sent.subarray(7));
    await until('everything at the client', () => clientGot.length === sent.length);
    expect(clientGot.equals(sent)).toBe(true);
    expect(gate.delivered).toBe(2);
  });
});

describe('seeded random', () => {
  test('one seed replays the same choices; another seed makes others', () => {
    const draw = (seed: number) => {
      const r = seededRandom(seed);
      return Array.from({ length: 20 }, () => r.int(0, 1_000_000));
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    const r = seededRandom(7);
    for (let i = 0; i < 1000; i++) {
      const n = r.int(3, 5);
      expect(n >= 3 && n <= 5).toBe(true);
      expect(['a', 'b']).toContain(r.pick(['a', 'b']));
    }
  });

  test('RELAY_CHAOS_SEED must be a 32-bit whole number; unset, a fresh one', () => {
    expect(chaosSeed('123')).toBe(123);
    expect(() => chaosSeed('x1')).toThrow(/RELAY_CHAOS_SEED must be a whole number/);
    expect(() => chaosSeed(String(2 ** 32))).toThrow(/RELAY_CHAOS_SEED/);
    expect(Number.isSafeInteger(chaosSeed(undefined))).toBe(true);
  });
});
