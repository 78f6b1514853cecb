/**
 * In-process echo replicas of one identity on Mosquitto and a fresh Postgres schema (issue 13), for
 * tests that reach into a replica's LeaseKeeper or its broker link: each replica is a RelayClient
 * with a TypeOrm store, a LeaseKeeper wanting every duty and holding its session lease, and short
 * leases so everything moves within seconds. Registers its own jest hooks (broker before all,
 * replicas stopped after each test).
 */
import {
  DUTY,
  LeaseKeeper,
  RelayClient,
  type LeaseTimers,
  type ReplicaOptions,
} from '../../framework/relay/index.js';
import type { TypeOrmRelayStore } from '../../framework/store/index.js';
import { getTestBroker, testBrokers, type TestBroker } from './broker.js';
import { onPostgres, storeFromEnv } from './child.js';
import { postgresAnswers } from './postgres.js';

export interface EchoReplica {
  client: RelayClient;
  keeper: LeaseKeeper;
  store: TypeOrmRelayStore;
  /** Commands this replica's handler ran. */
  handled: string[];
}

export interface EchoReplicaStart {
  prefix: string;
  shareGroup: string;
  slot: number;
  /** The broker url this replica connects to (a cuttable link, say); the test broker's by default. */
  url?: string;
  /** The keeper's timers (a test may pause them). */
  timers?: LeaseTimers;
}

export interface EchoReplicas {
  /** Mosquitto and Postgres both answer: the tests can run. */
  readonly runnable: boolean;
  broker(): TestBroker;
  /** Runs `fn` on a fresh schema; the replicas stop before it is dropped (their stop needs it). */
  onSchema(fn: (env: Record<string, string>) => Promise<void>): Promise<boolean>;
  start(env: Record<string, string>, at: EchoReplicaStart): Promise<EchoReplica>;
  /** Runs `fn` when the test ends, before the replicas started earlier stop. */
  onCleanup(fn: () => Promise<unknown>): void;
}

export async function useEchoReplicas(
  what: string,
  options: { ttlMs: number; fenceAfterMs?: number },
): Promise<EchoReplicas> {
  const hasMosquitto = (await testBrokers()).includes('mosquitto');
  const pgUp = await postgresAnswers();
  if (!pgUp) console.warn(`Postgres does not answer: ${what} is skipped`);
  let broker: TestBroker | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanUp = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  beforeAll(async () => {
    broker = await getTestBroker(hasMosquitto ? 'mosquitto' : undefined);
  });
  afterEach(cleanUp);
  afterAll(async () => {
    await broker?.close();
  });
  const theBroker = (): TestBroker => {
    if (!broker) throw new Error('useEchoReplicas: the broker starts in beforeAll');
    return broker;
  };

  const start = async (env: Record<string, string>, at: EchoReplicaStart): Promise<EchoReplica> => {
    const store = await storeFromEnv(env);
    cleanups.push(() => store.close());
    const replicaId = `${at.shareGroup}/${at.slot}`;
    const keeper = new LeaseKeeper({
      store: store.leases,
      replica: { replicaId },
      ttlMs: options.ttlMs,
      ...(at.timers ? { timers: at.timers } : {}),
    });
    keeper.on('error', () => undefined);
    Object.values(DUTY).forEach((d) => keeper.want(d));
    await keeper.start();
    cleanups.push(() => keeper.stop());
    const replica: ReplicaOptions = {
      replicaId,
      registry: store.leases,
      staleAfterMs: options.ttlMs,
      orphanCheckMs: 250,
      slotCheckMs: 250,
      membership: keeper,
      // Its session lease: no drain takes its session while it holds it (session-claim.ts).
      sessionKeeper: keeper,
      ...(options.fenceAfterMs !== undefined ? { fenceAfterMs: options.fenceAfterMs } : {}),
    };
    const client = await RelayClient.create({
      store,
      broker: { url: at.url ?? theBroker().url, shareGroup: at.shareGroup, replicaSlot: at.slot },
      topicPrefix: at.prefix,
      powBits: 8,
      duties: keeper,
      replica,
    });
    const handled: string[] = [];
    client.setMessageHandler((m, reply) => {
      handled.push(String(m.content.content));
      return reply(`echo: ${m.content.content}`);
    });
    await client.start();
    cleanups.push(() => client.stop());
    return { client, keeper, store, handled };
  };

  return {
    runnable: hasMosquitto && pgUp,
    broker: theBroker,
    onSchema: (fn) =>
      onPostgres(async (env) => {
        try {
          await fn(env);
        } finally {
          await cleanUp();
        }
      }),
    start,
    onCleanup: (fn) => cleanups.push(fn),
  };
}
