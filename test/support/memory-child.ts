/**
 * The measured side of test/integration/memory.test.ts, in its own process so that only what a
 * bot holds counts (not Jest, not the generator): opens the filled Postgres schema, starts a
 * RelayClient with BotRuntime(EchoBot) on it, scans every conversation the way the runtime reaches
 * them (the group list, each group's info, each peer's session, one by one), then prints
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
  let groupsSeen = 0;
  for (const g of groups) if (await client.group(g.groupId)) groupsSeen++;
  let sessions = 0;
  for (const peer of await client.peers()) if (await client.sessionWith(peer)) sessions++;
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
