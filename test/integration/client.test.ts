/**
 * Two RelayClients with separate identities talk through a real broker (Mosquitto when it answers,
 * else the embedded one): first contact with PoW at 18 bits, then access tokens.
 */
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';

let broker: TestBroker;
const clients: RelayClient[] = [];

beforeAll(async () => {
  broker = await getTestBroker();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
});

afterAll(async () => {
  await broker.close();
});

async function startClient(prefix: string, store = new MemoryRelayStore(), powBits = 18) {
  const client = await RelayClient.create({
    store,
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits,
  });
  clients.push(client);
  await client.start();
  return client;
}

function collect(client: RelayClient): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  return got;
}

async function until(cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('first contact with PoW at 18 bits, then 100 messages each way with access tokens', async () => {
  const prefix = uniqueName('relay');
  const alice = await startClient(prefix);
  const bob = await startClient(prefix);
  const atAlice = collect(alice);
  const atBob = collect(bob);

  await alice.send(bob.userId, 'hello bob');
  await until(() => atBob.length === 1);
  expect(atBob[0]!.from).toBe(alice.userId);
  expect(atBob[0]!.content.content).toBe('hello bob');

  for (let i = 0; i < 100; i++) {
    await alice.send(bob.userId, `a${i}`);
    await bob.send(alice.userId, `b${i}`);
  }
  await until(() => atBob.length === 101 && atAlice.length === 100);
  expect(atBob.slice(1).map((m) => m.content.content)).toEqual([...Array(100).keys()].map((i) => `a${i}`));
  expect(atAlice.map((m) => m.content.content)).toEqual([...Array(100).keys()].map((i) => `b${i}`));
  expect(alice.drops.total()).toBe(0);
  expect(bob.drops.total()).toBe(0);
  expect(await alice.peers()).toEqual([bob.userId]);
});
