/**
 * A bot process for the agent crash test: `/stream <n>` streams n parts ("p0 ", "p1 ", …) one per
 * RELAY_PART_MS (default 150) through ctx.stream(), on a durable store. The parent kills it with
 * SIGKILL mid-stream and starts it again; the new process must end the stream as interrupted.
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, and DATABASE_URL (Postgres; schema in RELAY_PG_SCHEMA) or
 * RELAY_SQLITE_PATH.
 */
import { Bot, BotRuntime, OnCommand, type BotContext } from '../../framework/bot/index.js';
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const partMs = Number(process.env.RELAY_PART_MS ?? 150);

async function* parts(n: number): AsyncIterable<string> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, partMs));
    yield `p${i} `;
  }
}

@Bot({ name: 'streamer' })
class Streamer {
  @OnCommand('stream', { args: '<n:int>' })
  async stream(ctx: BotContext<{ n: number }>): Promise<void> {
    await ctx.stream(parts(ctx.args.n));
  }
}

const store = await storeFromEnv();
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
});
const runtime = new BotRuntime(new Streamer(), { handlerTimeoutMs: 5_000 });
runtime.attach(client, { store });
await client.start();
sayReady(client.userId);
