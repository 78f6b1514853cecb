/**
 * Durable tasks across replicas (issue 13/14), through Mosquitto and Postgres: two replicas of one
 * bot, each with a LeaseKeeper, so a running task holds the lease `task:<bot>:<id>`. The replica
 * running a task is killed with SIGKILL; the other takes the lease over once it expires and ends
 * the task as its command says (resume, or fail), and the requester sees exactly one final state.
 */
import { TASK_RESTART_FAILED } from '../../framework/bot/index.js';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, testBrokers, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, sleep, startChild, storeFromEnv, type Child } from '../support/child.js';
import { until } from '../support/groups.js';
import { postgresAnswers } from '../support/postgres.js';

type Task = { id: string; replyTo: string; state: string; content: string; progress?: number };

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAnswers();
const run = hasMosquitto && pgUp ? test : test.skip;
if (!pgUp) console.warn('Postgres does not answer: the replica task tests are skipped');

const TTL_MS = 3000;
const FINAL = new Set(['completed', 'failed', 'canceled']);

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker(hasMosquitto ? 'mosquitto' : undefined);
});
afterAll(async () => {
  await broker.close();
});

/** Runs `command` as a task on one of two replicas, kills that one mid-task, returns what the requester saw. */
async function killRunner(command: string): Promise<{ log: Task[]; rowsLeft: number; survivor: string }> {
  let result: { log: Task[]; rowsLeft: number; survivor: string } | undefined;
  await onPostgres(async (env) => {
    const common = {
      ...env,
      RELAY_BROKER_URL: broker.url,
      RELAY_PREFIX: uniqueName('rep-tasks'),
      RELAY_SHARE_GROUP: uniqueName('bots'),
      RELAY_LEASE_TTL_MS: String(TTL_MS),
    };
    const out = ['', ''];
    const replicas: Child[] = [];
    const peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: broker.url },
      topicPrefix: common.RELAY_PREFIX,
      powBits: 8,
    });
    try {
      for (const slot of [0, 1]) {
        replicas.push(
          await startChild(
            'replica-bot-child.ts',
            { ...common, RELAY_SLOT: String(slot) },
            (o) => (out[slot] = o),
          ),
        );
      }
      const botId = replicas[0]!.userId;
      const got: ReceivedMessage[] = [];
      peer.on('message', (m) => {
        if (m.from === botId && m.content.type === 'task') got.push(m);
      });
      await peer.start();
      const sent = await peer.send(botId, command);
      const log = (): Task[] =>
        got.map((m) => m.content as unknown as Task).filter((t) => t.replyTo === sent.id);
      await until(() => log().some((t) => t.progress !== undefined), 60_000, 'progress of the task');
      // The share group handed the request to one replica: that one runs it.
      const runner = out.findIndex((o) => o.includes('TASK started'));
      expect(runner).toBeGreaterThanOrEqual(0);
      await kill(replicas[runner]!);
      expect(log().some((t) => FINAL.has(t.state))).toBe(false);
      await until(() => log().some((t) => FINAL.has(t.state)), 60_000, 'a final state of the task');
      // Nothing of the task comes after its final state.
      await sleep(TTL_MS);
      const inspect = await storeFromEnv(env, { inspect: true });
      const rowsLeft = (await inspect.listConversationData('tasks:replicated:')).length;
      await inspect.close();
      result = { log: log(), rowsLeft, survivor: `${common.RELAY_SHARE_GROUP}/${1 - runner}` };
    } finally {
      for (const r of replicas) await kill(r);
      await peer.stop();
    }
  });
  return result!;
}

run(
  'the runner of a resumable task dies: the other replica resumes and completes it',
  async () => {
    const { log, rowsLeft, survivor } = await killRunner('/steps 30');
    expect(log.filter((t) => FINAL.has(t.state))).toHaveLength(1);
    expect(log[log.length - 1]).toMatchObject({
      state: 'completed',
      content: `done 30 steps (resumed) on ${survivor}`,
    });
    expect(new Set(log.map((t) => t.id)).size).toBe(1);
    expect(rowsLeft).toBe(0);
  },
  180_000,
);

run(
  'the runner of a task that fails on restart dies: the other replica fails it, once',
  async () => {
    const { log, rowsLeft } = await killRunner('/fragile 30');
    expect(log.filter((t) => FINAL.has(t.state))).toHaveLength(1);
    expect(log[log.length - 1]).toMatchObject({ state: 'failed', content: TASK_RESTART_FAILED });
    expect(rowsLeft).toBe(0);
  },
  180_000,
);
