/**
 * The measured side of test/integration/memory.test.ts, in its own process so that only what a
 * bot holds counts (not Jest, not the generator): opens the filled Postgres schema, starts a
 * RelayClient with BotRuntime(EchoBot) on it, scans every conversation the way the runtime reaches
 * them (the group list, each group's info, each peer's session, a few at a time), then prints
 * `MEMORY {"rss":…,"maxRss":…,"groups":…,"sessions":…}` (bytes) and exits.
 *
 * Env: MEMORY_BROKER_URL, MEMORY_PREFIX, MEMORY_PG_URL, MEMORY_SCHEMA.
 */
import { BotRuntime } from '../../framework/bot/index.js';
import { RelayClient } from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { EchoBot } from '../../bots/echo/index.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const CONCURRENCY = 8;

/** How many of `items` `find` finds, CONCURRENCY lookups in flight at a time. */
async function countFound<T>(items: readonly T[], find: (t: T) => Promise<unknown>): Promise<number> {
  let next = 0;
  let found = 0;
  const worker = async () => {
    while (next < items.length) if (await find(items[next++]!)) found++;
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return found;
}

async function main(): Promise<void> {
  const store = new TypeOrmRelayStore(
    await createRelayDataSource({ url: env('MEMORY_PG_URL'), schema: env('MEMORY_SCHEMA') }),
  );
  const client = await RelayClient.create({
    store,
    broker: { url: env('MEMORY_BROKER_URL') },
    topicPrefix: env('MEMORY_PREFIX'),
    powBits: 8,
    powWorkers: 0,
  });
  const runtime = new BotRuntime(new EchoBot());
  runtime.attach(client, { store });
  await client.start();
  const groups = await client.groups();
  // A few at a time, as a bot's conversations are served concurrently (each lane on its own).
  const groupsSeen = await countFound(groups, (g) => client.group(g.groupId));
  const sessions = await countFound(await client.peers(), (peer) => client.sessionWith(peer));
  const rss = process.memoryUsage().rss;
  // resourceUsage().maxRSS is in kilobytes: the peak over the whole run, start-up and scan included.
  const maxRss = process.resourceUsage().maxRSS * 1024;
  await runtime.stop();
  await client.stop();
  await runtime.detach();
  await store.close();
  console.log(`MEMORY ${JSON.stringify({ rss, maxRss, groups: groupsSeen, sessions })}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
