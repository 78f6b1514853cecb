/**
 * One replica of a bot runtime for the replica open-reply and task tests (issues 13/14): a
 * RelayClient and a BotRuntime on the Postgres schema the parent named, in share group
 * RELAY_SHARE_GROUP at slot RELAY_SLOT, with a LeaseKeeper (ttl RELAY_LEASE_TTL_MS) wanting every
 * duty except those in RELAY_SKIP_DUTIES (comma-separated). `/slow <ms>` detaches (ctx.typing()),
 * prints "DETACHED" once its marker committed, and answers `done after <ms>` when the time is up;
 * `/steps <n>` is a task of n steps of 300 ms that resumes after a restart, `/fragile <n>` one that
 * fails instead. The parent kills it with SIGKILL mid-run.
 */
import { Bot, BotRuntime, OnCommand, type BotContext, type TaskContext } from '../../framework/bot/index.js';
import { DUTY, LeaseKeeper, RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const store = await storeFromEnv();
const shareGroup = env('RELAY_SHARE_GROUP');
const slot = Number(env('RELAY_SLOT'));
const ttlMs = Number(env('RELAY_LEASE_TTL_MS'));
const skip = new Set((process.env.RELAY_SKIP_DUTIES ?? '').split(',').filter(Boolean));
const replicaId = `${shareGroup}/${slot}`;

async function steps(ctx: TaskContext<{ n: number }>): Promise<string> {
  process.stdout.write(`TASK ${ctx.task.resumed ? 'resumed' : 'started'}\n`);
  for (let i = 1; i <= ctx.args.n; i++) {
    await new Promise((r) => setTimeout(r, 300));
    ctx.task.progress(i / ctx.args.n, `step ${i}`);
  }
  return `done ${ctx.args.n} steps${ctx.task.resumed ? ' (resumed)' : ''} on ${replicaId}`;
}

@Bot({ name: 'replicated', typing: false })
class Replicated {
  @OnCommand('slow', { args: '<ms:int>' })
  async slow(ctx: BotContext<{ ms: number }>): Promise<string> {
    await ctx.typing();
    process.stdout.write('DETACHED\n');
    await new Promise((r) => setTimeout(r, ctx.args.ms));
    return `done after ${ctx.args.ms}`;
  }

  @OnCommand('steps', { task: { onRestart: 'resume' }, args: '<n:int>' })
  resumable(ctx: TaskContext<{ n: number }>): Promise<string> {
    return steps(ctx);
  }

  @OnCommand('fragile', { task: true, args: '<n:int>' })
  fragile(ctx: TaskContext<{ n: number }>): Promise<string> {
    return steps(ctx);
  }
}

const keeper = new LeaseKeeper({ store: store.leases, replica: { replicaId }, ttlMs });
keeper.on('error', () => undefined);
for (const duty of Object.values(DUTY)) if (!skip.has(duty)) keeper.want(duty);
await keeper.start();

const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL'), shareGroup, replicaSlot: slot },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
  duties: keeper,
  replica: { replicaId, registry: store.leases, staleAfterMs: ttlMs, orphanCheckMs: 250 },
});
const runtime = new BotRuntime(new Replicated(), {
  handlerTimeoutMs: 120_000,
  tasks: { progressEveryMs: 200 },
});
runtime.attach(client, {
  store,
  duties: keeper,
  replica: { replicaId, registry: store.leases, staleAfterMs: ttlMs, checkMs: 250 },
});
await client.start();
sayReady(client.userId);
