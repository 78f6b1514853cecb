/**
 * Floods of envelopes, through a real broker (issue 10, holes 3, 5 and 6): QoS 0 deliveries are
 * dropped unread (`qos`, PROTOCOL.md §3); a QoS 1 message refused for overload is not acknowledged;
 * an envelope without valid PoW costs no store read; the replay cache is keyed on the bytes PoW and
 * tag bind, records an envelope once its PoW or tag verified whatever happens later, answers from
 * memory before the store, and never takes a legitimate message that failed to commit for a replay
 * of itself (PROTOCOL.md §5).
 *
 * The victim runs on the durable SQLite store behind a wrapper that counts calls and can make one
 * commit fail; the attacker is a raw MQTT connection that also sees what the peer publishes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  MemoryRelayStore,
  RelayClient,
  StorageError,
  decodeEnvelope,
  encodeEnvelope,
  inboxTopic,
  type DropReason,
  type ReceivedMessage,
  type RelayStore,
} from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import {
  RawMqtt,
  cborMap,
  envelopeEntries,
  invalidPowEnvelope,
  mineFor,
  nowSeconds,
  type Recipient,
} from '../support/attacker.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { until } from '../support/groups.js';

const POW_BITS = 12;
const TIMEOUT_MS = 60_000;

/**
 * A real store behind a wrapper: counts every call by method name; `failCommits` makes commits throw,
 * `holdCommits` makes them wait (a database that stalls) until it resolves.
 */
class CountingStore {
  readonly calls = new Map<string, number>();
  failCommits = 0;
  holdCommits: Promise<void> | undefined;
  readonly store: RelayStore;

  constructor(inner: RelayStore) {
    this.store = new Proxy(inner, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const name = String(prop);
          this.calls.set(name, this.count(name) + 1);
          if (name === 'commit' && this.failCommits > 0) {
            this.failCommits--;
            return Promise.reject(new StorageError('injected commit failure'));
          }
          const call = () => (value as (...a: unknown[]) => unknown).apply(target, args);
          if (name === 'commit' && this.holdCommits) return this.holdCommits.then(call);
          return call();
        };
      },
    });
  }

  count(name: string): number {
    return this.calls.get(name) ?? 0;
  }
}

let broker: TestBroker;
let dir: string;
let counted: CountingStore;
let victim: RelayClient;
let peer: RelayClient;
let attacker: RawMqtt;
let inbox: string;
let victimAddr: Recipient;
const prefix = uniqueName('floods');
const received: ReceivedMessage[] = [];
const echoes: ReceivedMessage[] = [];

function nextDrop(): Promise<DropReason> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no drop event')), TIMEOUT_MS);
    victim.once('drop', (d) => {
      clearTimeout(timer);
      resolve(d.reason);
    });
  });
}

async function publishAndDrop(bytes: Uint8Array, qos: 0 | 1 = 1): Promise<DropReason> {
  const dropped = nextDrop();
  await attacker.publish(inbox, bytes, { qos });
  return dropped;
}

/** The same envelope with an unknown CBOR key added (keys 0..6 are the envelope's). */
function rekeyed(bytes: Uint8Array, marker: number): Uint8Array {
  return cborMap([...envelopeEntries(decodeEnvelope(bytes)), [7, marker]]);
}

/** Sends `text` from the peer and returns the envelope the attacker saw on the victim's inbox. */
async function capturedSend(text: string): Promise<Uint8Array> {
  const seen = attacker.captured(inbox).length;
  await peer.send(victim.userId, text);
  await until(() => received.some((m) => m.content.content === text), TIMEOUT_MS, `delivery of ${text}`);
  return attacker.nth(inbox, seen + 1);
}

beforeAll(async () => {
  broker = await getTestBroker();
  dir = await mkdtemp(path.join(tmpdir(), 'relay-floods-'));
  counted = new CountingStore(
    new TypeOrmRelayStore(await createRelayDataSource({ sqlitePath: path.join(dir, 'victim.sqlite') })),
  );
  victim = await RelayClient.create({
    store: counted.store,
    // A lasting session: a message left unacknowledged must be redelivered after the reconnect.
    broker: { url: broker.url, clientId: uniqueName('floods-victim'), sessionExpirySeconds: 300 },
    topicPrefix: prefix,
    powBits: POW_BITS,
  });
  victim.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  victim.on('message', (m) => received.push(m));
  await victim.start();
  peer = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url, clientId: uniqueName('floods-peer'), sessionExpirySeconds: 0 },
    topicPrefix: prefix,
  });
  peer.on('message', (m) => echoes.push(m));
  await peer.start();
  inbox = inboxTopic(prefix, victim.identity.userId);
  victimAddr = { userId: victim.identity.userId, sealPublic: victim.identity.sealPublic };
  attacker = await RawMqtt.connect(broker.url);
  await attacker.watch(inbox);
  await capturedSend('hello');
}, TIMEOUT_MS);

afterAll(async () => {
  await Promise.all([victim?.stop(), peer?.stop()]);
  await attacker?.close();
  await broker?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('QoS 0 on the inbox (hole 3)', () => {
  test('an envelope delivered at QoS 0 is dropped unread → qos', async () => {
    expect(await publishAndDrop(invalidPowEnvelope(victimAddr.userId, POW_BITS), 0)).toBe('qos');
  });

  test('a QoS 0 flood of re-keyed copies of a captured valid envelope does not cost the peer one message', async () => {
    const captured = await capturedSend('flood source');
    const overloadBefore = victim.drops.get('overload');
    const qosBefore = victim.drops.get('qos');
    const reads = counted.count('hasEnvelope');
    const copies = Array.from({ length: 4000 }, (_, i) => rekeyed(captured, i));
    const first = copies.slice(0, 2000).map((b) => attacker.publish(inbox, b, { qos: 0 }));
    const sent = Array.from({ length: 20 }, (_, i) => peer.send(victim.userId, `under flood ${i}`));
    const second = copies.slice(2000).map((b) => attacker.publish(inbox, b, { qos: 0 }));
    await Promise.all([...first, ...second]);
    const ids = (await Promise.all(sent)).map((s) => s.id);
    await until(
      () => ids.every((id) => echoes.some((e) => e.content.replyTo === id)),
      TIMEOUT_MS,
      `replies to all 20 (${ids.filter((id) => !echoes.some((e) => e.content.replyTo === id)).length} missing)`,
    );
    expect(victim.drops.get('overload')).toBe(overloadBefore);
    // Every copy was dropped unread: the flood cost no store read (the 20 legitimate ones may).
    await until(() => victim.drops.get('qos') === qosBefore + 4000, TIMEOUT_MS, '4000 qos drops');
    expect(counted.count('hasEnvelope') - reads).toBeLessThanOrEqual(20);
  }, 120_000);
});

describe('overload (hole 3)', () => {
  test('a QoS 1 message refused for overload is not acknowledged: the broker redelivers it and it is processed', async () => {
    // While the database stalls, 1,000 sends to the peer fill its lane to the bound, so the peer's
    // next message finds the lane full.
    let release!: () => void;
    counted.holdCommits = new Promise<void>((r) => (release = r));
    const overload = victim.drops.get('overload');
    const sends = Array.from({ length: 1000 }, () => victim.send(peer.userId, 'filler'));
    try {
      await peer.send(victim.userId, 'while the lane is full');
      await until(() => victim.drops.get('overload') > overload, TIMEOUT_MS, 'a refusal for overload');
    } finally {
      counted.holdCommits = undefined;
      release();
    }
    await until(
      () => received.some((m) => m.content.content === 'while the lane is full'),
      120_000,
      'the message refused for overload, redelivered',
    );
    await Promise.all(sends);
  }, 180_000);
});

describe('cheap checks first (hole 6)', () => {
  test('a flood of invalid-PoW envelopes at QoS 1 costs not one store read', async () => {
    const reads = counted.count('hasEnvelope');
    const pow = victim.drops.get('pow');
    await Promise.all(
      Array.from({ length: 300 }, () =>
        attacker.publish(inbox, invalidPowEnvelope(victimAddr.userId, POW_BITS)),
      ),
    );
    await until(() => victim.drops.get('pow') === pow + 300, TIMEOUT_MS, '300 pow drops');
    expect(counted.count('hasEnvelope')).toBe(reads);
  });
});

describe('replay cache (hole 5)', () => {
  test('a re-keyed replay (an unknown CBOR key added) of a delivered envelope → replay', async () => {
    const captured = await capturedSend('rekey me');
    expect(await publishAndDrop(rekeyed(captured, 1))).toBe('replay');
  });

  test('an envelope that failed after its PoW verified buys one attempt: exact and re-keyed replays → replay', async () => {
    const e = {
      enc: new Uint8Array(32).fill(7),
      ciphertext: new Uint8Array(200).fill(9),
      sentAt: nowSeconds(),
    };
    const bytes = encodeEnvelope({ ...e, powNonce: mineFor(victimAddr.userId, e, POW_BITS) });
    expect(await publishAndDrop(bytes)).toBe('hpke');
    expect(await publishAndDrop(bytes)).toBe('replay');
    expect(await publishAndDrop(rekeyed(bytes, 2))).toBe('replay');
  });

  test('500 replays of one captured valid envelope are answered from memory, not one store read each', async () => {
    const captured = await capturedSend('replay flood');
    const reads = counted.count('hasEnvelope');
    const replays = victim.drops.get('replay');
    const drops = victim.drops.total();
    await Promise.all(
      Array.from({ length: 500 }, (_, i) => attacker.publish(inbox, i % 2 ? captured : rekeyed(captured, i))),
    );
    await until(() => victim.drops.total() === drops + 500, TIMEOUT_MS, '500 drops');
    expect(victim.drops.get('replay') - replays).toBe(500);
    expect(counted.count('hasEnvelope') - reads).toBeLessThanOrEqual(1);
  });

  test('a message whose commit failed is redelivered and processed, not taken for a replay of itself', async () => {
    counted.failCommits = 1;
    const commits = counted.count('commit');
    const { id } = await peer.send(victim.userId, 'commit fails once');
    await until(() => echoes.some((e) => e.content.replyTo === id), TIMEOUT_MS, 'the reply after redelivery');
    expect(counted.count('commit') - commits).toBeGreaterThanOrEqual(2);
    expect(received.filter((m) => m.content.content === 'commit fails once')).toHaveLength(1);
  });
});
