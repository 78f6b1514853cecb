/**
 * A bot process for the task restart test: `/slow <n>` is a task of n steps of RELAY_STEP_MS
 * (default 200) whose handler resumes after a restart; `/fragile <n>` the same, failed explicitly
 * by a restart (the default). The parent kills it with SIGKILL mid-task and starts it again on the
 * same store. Env: RELAY_BROKER_URL, RELAY_PREFIX, and DATABASE_URL (Postgres; schema in
 * RELAY_PG_SCHEMA) or RELAY_SQLITE_PATH.
 */
import { Bot, BotRuntime, OnCommand, type TaskContext } from '../../framework/bot/index.js';
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const stepMs = Number(process.env.RELAY_STEP_MS ?? 200);

async function steps(ctx: TaskContext<{ n: number }>): Promise<string> {
  for (let i = 1; i <= ctx.args.n; i++) {
    await new Promise((r) => setTimeout(r, stepMs));
    ctx.task.progress(i / ctx.args.n, `step ${i}`);
  }
  return `done ${ctx.args.n} steps${ctx.task.resumed ? ' (resumed)' : ''}`;
}

@Bot({ name: 'tasker', typing: false })
class Tasker {
  @OnCommand('slow', { task: { onRestart: 'resume' }, args: '<n:int>' })
  slow(ctx: TaskContext<{ n: number }>): Promise<string> {
    return steps(ctx);
  }

  @OnCommand('fragile', { task: true, args: '<n:int>' })
  fragile(ctx: TaskContext<{ n: number }>): Promise<string> {
    return steps(ctx);
  }
}

const store = await storeFromEnv();
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
});
const runtime = new BotRuntime(new Tasker(), { handlerTimeoutMs: 1_000, tasks: { progressEveryMs: 200 } });
runtime.attach(client, { store });
await client.start();
sayReady(client.userId);
