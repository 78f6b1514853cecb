/**
 * The bot process of the agent crash test (test/integration/agent-crash.test.ts), on a durable
 * store, killed with SIGKILL at random points and started again on the same store:
 * - `/stream <n> <ms>`: ctx.typing(), then n parts ("s0 ", "s1 ", …), one per `ms`, via ctx.stream();
 * - `/fail <n> <ms>`: a stream whose source throws after n parts (ends with STREAM_FAILED_NOTE);
 * - `/slow <ms>`: answers "slept <ms>" after `ms`, with automatic typing meanwhile (after 300 ms).
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, and DATABASE_URL (Postgres; schema in RELAY_PG_SCHEMA) or
 * RELAY_SQLITE_PATH; RELAY_TEST_LOG_DIR for a debug log.
 */
import { pino } from 'pino';
import { Bot, BotRuntime, OnCommand, type BotContext } from '../../framework/bot/index.js';
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** n parts "s0 ", "s1 ", … one per `ms`; then, if `fail`, the source throws. */
async function* parts(n: number, ms: number, fail = false): AsyncIterable<string> {
  for (let i = 0; i < n; i++) {
    await sleep(ms);
    yield `s${i} `;
  }
  if (fail) throw new Error('the source failed');
}

@Bot({ name: 'crasher', typing: { afterMs: 300, everyMs: 3000 } })
class CrashAgent {
  @OnCommand('stream', { args: '<n:int> <ms:int>' })
  async stream(ctx: BotContext<{ n: number; ms: number }>): Promise<void> {
    await ctx.typing();
    await ctx.stream(parts(ctx.args.n, ctx.args.ms));
  }

  @OnCommand('fail', { args: '<n:int> <ms:int>' })
  async fail(ctx: BotContext<{ n: number; ms: number }>): Promise<void> {
    // The error reply that follows the failed final is expected; the test reads the final.
    await ctx.stream(parts(ctx.args.n, ctx.args.ms, true));
  }

  @OnCommand('slow', { args: '<ms:int>' })
  async slow(ctx: BotContext<{ ms: number }>): Promise<string> {
    await sleep(ctx.args.ms);
    return `slept ${ctx.args.ms}`;
  }
}

// RELAY_TEST_LOG_DIR=dir appends every process's debug log to dir/agent.log, for chasing a failure.
const logDir = process.env.RELAY_TEST_LOG_DIR;
const logger = logDir
  ? pino({ level: 'debug' }, pino.destination({ dest: `${logDir}/agent.log`, append: true, sync: true }))
  : undefined;
const store = await storeFromEnv();
const client = await RelayClient.create({
  ...(logger ? { logger } : {}),
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
  groups: { commitDelayMs: 100 },
});
const runtime = new BotRuntime(new CrashAgent(), { handlerTimeoutMs: 15_000, ...(logger ? { logger } : {}) });
runtime.attach(client, { store });
await client.start();
sayReady(client.userId);
