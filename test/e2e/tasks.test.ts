/**
 * Durable tasks end to end, through the real broker and Postgres: a task command is answered at
 * once (`submitted`), runs past the handler time limit with paced progress (`working`), and ends
 * `completed` with the result or `failed` with the reason, in 1:1 and in a group; the requester
 * cancels (`canceled`), a cancel from anyone else is dropped and counted; the limits refuse with a
 * clear message. The restart cases are in tasks-restart.test.ts.
 */
import {
  Bot,
  OnCommand,
  TASK_CANCELED,
  TASK_LIMIT_TOTAL,
  TASK_LIMIT_USER,
  type TaskContext,
} from '../../framework/bot/index.js';
import type { ReceivedMessage, RelayClient } from '../../framework/relay/index.js';
import { createTestHarness, type TestHarness, type TestPeer } from '../../framework/testing/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { sleep } from '../support/child.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresForTests } from '../support/postgres.js';

@Bot({ name: 'worker', typing: false })
class Worker {
  @OnCommand('research', { task: true, args: '<steps:int>' })
  async research(ctx: TaskContext<{ steps: number }>): Promise<string> {
    for (let i = 1; i <= ctx.args.steps; i++) {
      await sleep(150);
      ctx.task.progress(i / ctx.args.steps, `step ${i}`);
    }
    return `found ${ctx.args.steps} things for ${ctx.sender.slice(0, 6)}`;
  }

  @OnCommand('wait', { task: true })
  async wait(ctx: TaskContext): Promise<string> {
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    return 'stopped';
  }

  @OnCommand('boom', { task: true })
  async boom(): Promise<string> {
    await sleep(50);
    throw new Error('no such source');
  }
}

type Task = { type: 'task'; id: string; replyTo: string; state: string; content: string; progress?: number };

const pgUp = await postgresForTests('tasks e2e');
let broker: TestBroker;
let h: TestHarness;
const schema = uniqueName('tasks_e2e').replace(/-/g, '_');

/** The `task` messages a client received from the bot answering `requestId`, in arrival order. */
function taskLog(client: RelayClient, from: () => string): (requestId: string) => Task[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => {
    if (m.from === from() && m.content.type === 'task') got.push(m);
  });
  return (requestId) => got.map((m) => m.content as unknown as Task).filter((c) => c.replyTo === requestId);
}

async function eventually(check: () => boolean, what: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(25);
  }
}

const FINAL = new Set(['completed', 'failed', 'canceled']);
const ended = (log: Task[]): Task | undefined => log.find((t) => FINAL.has(t.state));
const cancel = (p: TestPeer, taskId: string) =>
  p.client.send(h.bot.userId, { type: 'task-cancel', replyTo: taskId, content: '' });

(pgUp ? describe : describe.skip)('durable tasks', () => {
  let alice: TestPeer;
  let aliceTasks: (id: string) => Task[];

  beforeAll(async () => {
    broker = await getTestBroker();
    await createPgSchema(schema);
    h = await createTestHarness(Worker, {
      brokerUrl: broker.url,
      databaseUrl: PG_URL,
      schema,
      runtimeOptions: {
        handlerTimeoutMs: 1_000,
        tasks: { perUser: 2, total: 3, progressEveryMs: 300, cancelGraceMs: 1_000 },
      },
    });
    alice = await h.peer();
    aliceTasks = taskLog(alice.client, () => h.bot.userId);
  });

  afterAll(async () => {
    await h?.close();
    await broker?.close();
    if (pgUp) await dropPgSchema(schema);
  });

  test('1:1: submitted, working with progress, completed with the result, past the time limit', async () => {
    const sent = await alice.send('/research 12');
    await eventually(
      () => ended(aliceTasks(sent.id)) !== undefined,
      () => JSON.stringify(aliceTasks(sent.id)),
    );
    const log = aliceTasks(sent.id);
    expect(log[0]).toMatchObject({ state: 'submitted', replyTo: sent.id });
    const id = log[0]!.id;
    expect(log.every((t) => t.id === id)).toBe(true);
    expect(log[1]).toMatchObject({ state: 'working' });
    const progress = log.filter((t) => t.progress !== undefined).map((t) => t.progress!);
    expect(progress.length).toBeGreaterThanOrEqual(1);
    // Paced: fewer updates than progress() calls; never backwards.
    expect(progress.length).toBeLessThan(12);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(log[log.length - 1]).toMatchObject({
      state: 'completed',
      content: `found 12 things for ${alice.userId.slice(0, 6)}`,
    });
    // Nothing after the final state, and the durable row is gone.
    expect(log.filter((t) => FINAL.has(t.state))).toHaveLength(1);
    expect(await h.bot.store.listConversationData('tasks:worker:')).toEqual([]);
  });

  test('a handler that throws ends the task failed with the reason', async () => {
    const sent = await alice.send('/boom');
    await eventually(
      () => ended(aliceTasks(sent.id)) !== undefined,
      () => JSON.stringify(aliceTasks(sent.id)),
    );
    expect(ended(aliceTasks(sent.id))).toMatchObject({
      state: 'failed',
      content: 'the task failed: no such source',
    });
  });

  test('the requester cancels; a cancel from anyone else is dropped and counted', async () => {
    const bob = await h.peer();
    const sent = await alice.send('/wait');
    await eventually(
      () => aliceTasks(sent.id).some((t) => t.state === 'working'),
      () => JSON.stringify(aliceTasks(sent.id)),
    );
    const id = aliceTasks(sent.id)[0]!.id;
    const before = h.bot.runtime.taskCounters.cancel_not_requester;
    await cancel(bob, id);
    await eventually(
      () => h.bot.runtime.taskCounters.cancel_not_requester === before + 1,
      () => JSON.stringify(h.bot.runtime.taskCounters),
    );
    expect(ended(aliceTasks(sent.id))).toBeUndefined();
    expect(await h.bot.store.listConversationData('task-cancel:worker:')).toEqual([]);
    await cancel(alice, id);
    await eventually(
      () => ended(aliceTasks(sent.id)) !== undefined,
      () => JSON.stringify(aliceTasks(sent.id)),
    );
    expect(ended(aliceTasks(sent.id))).toMatchObject({ state: 'canceled', content: TASK_CANCELED });
    expect(await h.bot.store.listConversationData('tasks:worker:')).toEqual([]);
    expect(await h.bot.store.listConversationData('task-cancel:worker:')).toEqual([]);
  });

  test('limits: per user, then in total, each refused with its message', async () => {
    const bob = await h.peer();
    const bobTasks = taskLog(bob.client, () => h.bot.userId);
    const a1 = await alice.send('/wait');
    const a2 = await alice.send('/wait');
    await eventually(
      () => aliceTasks(a2.id).length > 0,
      () => JSON.stringify(aliceTasks(a2.id)),
    );
    const a3 = await alice.send('/wait');
    await eventually(
      () => alice.replies.some((r) => r.replyTo === a3.id && r.content === TASK_LIMIT_USER),
      () => JSON.stringify(alice.replies.slice(-5)),
    );
    expect(aliceTasks(a3.id)).toEqual([]);
    const b1 = await bob.send('/wait');
    await eventually(
      () => bobTasks(b1.id).length > 0,
      () => JSON.stringify(bobTasks(b1.id)),
    );
    const b2 = await bob.send('/wait');
    await eventually(
      () => bob.replies.some((r) => r.replyTo === b2.id && r.content === TASK_LIMIT_TOTAL),
      () => JSON.stringify(bob.replies.slice(-5)),
    );
    for (const [p, log, req] of [
      [alice, aliceTasks, a1],
      [alice, aliceTasks, a2],
      [bob, bobTasks, b1],
    ] as const) {
      await eventually(
        () => log(req.id).some((t) => t.state === 'working'),
        () => JSON.stringify(log(req.id)),
      );
      await cancel(p, log(req.id)[0]!.id);
    }
    for (const [log, req] of [
      [aliceTasks, a1],
      [aliceTasks, a2],
      [bobTasks, b1],
    ] as const) {
      await eventually(
        () => ended(log(req.id))?.state === 'canceled',
        () => JSON.stringify(log(req.id)),
      );
    }
  });

  test('a group: another member sees the task from submitted to completed', async () => {
    const bob = await h.peer();
    const group = await alice.createGroup({ members: [h.bot.userId, bob.userId], name: 'tasks' });
    await bob.waitForGroup(group.groupId);
    const seen = taskLog(bob.client, () => h.bot.userId);
    const deadline = Date.now() + 30_000;
    while (!(await h.bot.runtime.groups()).some((g) => g.groupId === group.groupId)) {
      if (Date.now() > deadline) throw new Error('the bot did not join the group');
      await sleep(50);
    }
    const sent = await alice.sendToGroup(group.groupId, '/research@worker 3');
    await eventually(
      () => ended(seen(sent.id)) !== undefined,
      () => JSON.stringify(seen(sent.id)),
    );
    const states = seen(sent.id).map((t) => t.state);
    expect(states[0]).toBe('submitted');
    expect(states).toContain('working');
    expect(states[states.length - 1]).toBe('completed');
  });
});
