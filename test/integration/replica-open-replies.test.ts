/**
 * Open-reply markers across replicas (issue 13/14), through Mosquitto and Postgres: a detached
 * handler run's marker carries its replica, and the start-up and dead-replica cleanup ends only the
 * markers of dead replicas (or this replica's own from before a restart), never a live run's.
 *
 * - replica B starts, owning the scheduler, while A has a slow detached run in flight: A's user gets
 *   the answer and no INTERRUPTED_REPLY;
 * - A is killed (SIGKILL) mid-run: once its heartbeat is stale, live B ends A's marker, once.
 */
import { DUTY } from '../../framework/relay/index.js';
import { INTERRUPTED_REPLY } from '../../framework/bot/index.js';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, testBrokers, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, sleep, startChild, storeFromEnv, type Child } from '../support/child.js';
import { until } from '../support/groups.js';
import { postgresAnswers } from '../support/postgres.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAnswers();
const run = hasMosquitto && pgUp ? test : test.skip;
if (!pgUp) console.warn('Postgres does not answer: the replica open-reply tests are skipped');

/** Short leases, so a dead replica is told within seconds. */
const TTL_MS = 3000;
/** Long enough that B is up (it takes seconds to start) while A's run still goes on. */
const RUN_MS = 20_000;

let broker: TestBroker;
const cleanups: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  broker = await getTestBroker(hasMosquitto ? 'mosquitto' : undefined);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(async () => {
  await broker.close();
});

async function startPeer(prefix: string): Promise<{ client: RelayClient; texts: () => string[] }> {
  const client = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
    powBits: 8,
  });
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  await client.start();
  cleanups.push(() => client.stop());
  return {
    client,
    // The answers, without the typing indicators around them.
    texts: () => got.filter((m) => m.content.type !== 'typing').map((m) => String(m.content.content)),
  };
}

/** Replica A (slot 0, without the scheduler duty) with a `/slow <ms>` run detached for `peer`. */
async function slowRunOnA(
  env: Record<string, string>,
  ms: number,
): Promise<{ a: Child; common: Record<string, string>; peer: Awaited<ReturnType<typeof startPeer>> }> {
  const common = {
    ...env,
    RELAY_BROKER_URL: broker.url,
    RELAY_PREFIX: uniqueName('rep-replies'),
    RELAY_SHARE_GROUP: uniqueName('bots'),
    RELAY_LEASE_TTL_MS: String(TTL_MS),
  };
  let out = '';
  const a = await startChild(
    'replica-bot-child.ts',
    { ...common, RELAY_SLOT: '0', RELAY_SKIP_DUTIES: DUTY.scheduler },
    (o) => (out = o),
  );
  cleanups.push(() => kill(a));
  const peer = await startPeer(common.RELAY_PREFIX);
  await peer.client.send(a.userId, `/slow ${ms}`);
  await until(() => out.includes('DETACHED'), 30_000, "A's detached run");
  return { a, common, peer };
}

const interrupted = (texts: string[]): number => texts.filter((t) => t === INTERRUPTED_REPLY).length;

run(
  'a replica starting as the scheduler owner leaves a live replica’s open reply alone',
  async () => {
    await onPostgres(async (env) => {
      const { common, peer } = await slowRunOnA(env, RUN_MS);
      // B owns the scheduler from its start: the old start-up cleanup ended every marker here.
      const b = await startChild('replica-bot-child.ts', { ...common, RELAY_SLOT: '1' });
      cleanups.push(() => kill(b));
      // Past B's start-up cleanup and a few of its periodic checks, A's run still going.
      await sleep(TTL_MS);
      expect(peer.texts()).toEqual([]);
      await until(() => peer.texts().includes(`done after ${RUN_MS}`), 60_000, "A's answer");
      // Time for a late cleanup by B's periodic check, which must also leave a live run alone.
      await sleep(TTL_MS);
      expect(peer.texts()).toEqual([`done after ${RUN_MS}`]);
      const reader = await storeFromEnv(env);
      expect(await reader.listConversationData('replies:replicated:')).toEqual([]);
      await reader.close();
    });
  },
  120_000,
);

run(
  'a replica killed mid-run: a live replica ends its open reply once it is dead',
  async () => {
    await onPostgres(async (env) => {
      const { a, common, peer } = await slowRunOnA(env, 600_000);
      const b = await startChild('replica-bot-child.ts', { ...common, RELAY_SLOT: '1' });
      cleanups.push(() => kill(b));
      // A is alive: its run is not B's to end.
      await sleep(TTL_MS + 1000);
      expect(interrupted(peer.texts())).toBe(0);
      await kill(a);
      await until(() => interrupted(peer.texts()) > 0, 60_000, 'the interrupted reply');
      await sleep(TTL_MS);
      expect(peer.texts()).toEqual([INTERRUPTED_REPLY]);
      const reader = await storeFromEnv(env);
      expect(await reader.listConversationData('replies:replicated:')).toEqual([]);
      await reader.close();
    });
  },
  120_000,
);
