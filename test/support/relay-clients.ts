/**
 * The setup most integration tests share: one test broker for the file, and RelayClients on it
 * that are stopped after each test, also when the test failed half-way.
 */
import { RelayClient, type RelayClientOptions } from '../../framework/relay/index.js';
import { getTestBroker, type BrokerKind, type TestBroker } from './broker.js';

/** Everything of RelayClientOptions but the broker, whose url is the test broker's. */
export type TestClientOptions = Omit<RelayClientOptions, 'broker'> & {
  broker?: Omit<RelayClientOptions['broker'], 'url'>;
};

export interface RelayClients {
  /** The file's broker, from beforeAll on. */
  readonly broker: TestBroker;
  /** The clients stopped after the running test; a test that stops one itself takes it out first. */
  readonly clients: RelayClient[];
  /** A client on the broker, not yet started, stopped after the test. */
  create(options: TestClientOptions): Promise<RelayClient>;
  /** A started client on the broker, stopped after the test. */
  start(options: TestClientOptions): Promise<RelayClient>;
}

/** Registers the hooks in the calling scope: the broker (`kind`, or whichever answers) and the stops. */
export function useRelayClients(kind?: BrokerKind): RelayClients {
  let broker: TestBroker | undefined;
  const clients: RelayClient[] = [];

  beforeAll(async () => {
    broker = await getTestBroker(kind);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
  });
  afterAll(async () => {
    await broker?.close();
  });

  const relay: RelayClients = {
    get broker() {
      if (broker === undefined)
        throw new Error('the broker is there from beforeAll on, not while describing');
      return broker;
    },
    clients,
    async create(options) {
      const client = await RelayClient.create({
        ...options,
        broker: { ...options.broker, url: relay.broker.url },
      });
      clients.push(client);
      return client;
    },
    async start(options) {
      const client = await relay.create(options);
      await client.start();
      return client;
    },
  };
  return relay;
}
