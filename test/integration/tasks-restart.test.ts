/**
 * A bot process killed with SIGKILL in the middle of a task, then started again on the same
 * Postgres store: a task whose command resumes runs its handler again (ctx.task.resumed) and
 * completes; one whose command fails explicitly ends `failed` with TASK_RESTART_FAILED. Either
 * way the requester sees a final state, exactly one, and the durable row is gone.
 */
import { TASK_RESTART_FAILED } from '../../framework/bot/index.js';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, onPostgres, sleep, startChild, storeFromEnv, type Child } from '../support/child.js';
import { postgresForTests } from '../support/postgres.js';

type Task = { id: string; replyTo: string; state: string; content: string; progress?: number };

const pgUp = await postgresForTests('task restart');
let broker: TestBroker;

beforeAll(async () => {
  broker = await getTestBroker();
});

afterAll(async () => {
  await broker?.close();
});

async function eventually(check: () => boolean, what: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(25);
  }
}

const FINAL = new Set(['completed', 'failed', 'canceled']);

/** Kills the bot mid-task, restarts it, and returns the requester's `task` messages for the request. */
async function killMidTask(command: string): Promise<{ log: Task[]; rowsLeft: number }> {
  let result: { log: Task[]; rowsLeft: number } | undefined;
  await onPostgres(async (env) => {
    const childEnv = { ...env, RELAY_BROKER_URL: broker.url, RELAY_PREFIX: uniqueName('tasks') };
    let child: Child = await startChild('task-child.ts', childEnv);
    const botId = child.userId;
    const peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: broker.url },
      topicPrefix: childEnv.RELAY_PREFIX,
      powBits: 8,
    });
    const got: ReceivedMessage[] = [];
    peer.on('message', (m) => {
      if (m.from === botId && m.content.type === 'task') got.push(m);
    });
    await peer.start();
    try {
      const sent = await peer.send(botId, command);
      const log = (): Task[] =>
        got.map((m) => m.content as unknown as Task).filter((t) => t.replyTo === sent.id);
      // Killed once it made progress: the handler is well into its run.
      await eventually(
        () => log().some((t) => t.progress !== undefined),
        () => JSON.stringify(log()),
      );
      await kill(child);
      expect(log().some((t) => FINAL.has(t.state))).toBe(false);
      child = await startChild('task-child.ts', childEnv);
      await eventually(
        () => log().some((t) => FINAL.has(t.state)),
        () => JSON.stringify(log()),
      );
      // Nothing of the task comes after its final state.
      await sleep(1_000);
      const inspect = await storeFromEnv(env, { inspect: true });
      const rowsLeft = (await inspect.listConversationData('tasks:tasker:')).length;
      await inspect.close();
      result = { log: log(), rowsLeft };
      expect(peer.drops.get('mls')).toBe(0);
    } finally {
      await kill(child);
      await peer.stop();
    }
  });
  return result!;
}

// Each restart waits for the broker to let go of the killed process's session (keepalive): ~45 s.
(pgUp ? describe : describe.skip)('tasks across a SIGKILL restart', () => {
  test('onRestart resume: the handler runs again and the task completes', async () => {
    const { log, rowsLeft } = await killMidTask('/slow 20');
    const finals = log.filter((t) => FINAL.has(t.state));
    expect(finals).toHaveLength(1);
    expect(log[log.length - 1]).toMatchObject({ state: 'completed', content: 'done 20 steps (resumed)' });
    expect(log.some((t) => t.state === 'working' && t.content === 'resumed after a restart')).toBe(true);
    expect(new Set(log.map((t) => t.id)).size).toBe(1);
    expect(rowsLeft).toBe(0);
  }, 180_000);

  test('the default (fail): the task ends failed, saying so', async () => {
    const { log, rowsLeft } = await killMidTask('/fragile 20');
    const finals = log.filter((t) => FINAL.has(t.state));
    expect(finals).toHaveLength(1);
    expect(log[log.length - 1]).toMatchObject({ state: 'failed', content: TASK_RESTART_FAILED });
    expect(rowsLeft).toBe(0);
  }, 180_000);
});
