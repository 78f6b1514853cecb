/**
 * The bot of bench/group-bot.ts, in its own process so its CPU is its own:
 *
 *   group-bot-child.ts <brokerUrl> <prefix> memory
 *   group-bot-child.ts <brokerUrl> <prefix> postgres <postgresUrl> <schema>
 *
 * A RelayClient whose transactional handler answers every "/echo x" with "echo: x" in the same
 * conversation: to the sender's inbox for a 1:1 message, on the group topic for a group message.
 *
 * JSON lines to the parent: `{"ready":true,"userId":…}` once serving, `{"joined":groupId}` for each
 * group joined, `{"cpu":{user,system}}` in answer to `{"cmd":"cpu"}` (CPU µs since start). On
 * `{"cmd":"stop"}` (or stdin closing) it stops and exits.
 */
import { createInterface } from 'node:readline';
import { MemoryRelayStore, RelayClient, type RelayStore } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';

const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

async function openStore(kind: string, pgUrl?: string, schema?: string): Promise<RelayStore> {
  if (kind === 'memory') return new MemoryRelayStore();
  if (kind === 'postgres' && pgUrl && schema) {
    return new TypeOrmRelayStore(await createRelayDataSource({ url: pgUrl, schema }));
  }
  throw new Error('usage: group-bot-child.ts <brokerUrl> <prefix> memory | postgres <pgUrl> <schema>');
}

async function main(argv: readonly string[]): Promise<void> {
  const [url, prefix, kind, pgUrl, schema] = argv;
  if (!url || !prefix || !kind) throw new Error('usage: group-bot-child.ts <brokerUrl> <prefix> <store> …');
  const store = await openStore(kind, pgUrl, schema);
  const client = await RelayClient.create({
    store,
    broker: { url },
    topicPrefix: prefix,
    powBits: 8,
    powWorkers: 0,
    welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
    groups: { commitDelayMs: 20 },
  });
  let errors = 0;
  client.on('error', () => errors++);
  client.on('group', (e) => {
    if (e.kind === 'joined') say({ joined: e.groupId });
  });
  client.setMessageHandler((m, reply) => {
    const text = m.content.content;
    if (text.startsWith('/echo ')) reply(`echo: ${text.slice('/echo '.length)}`);
  });
  await client.start();
  say({ ready: true, userId: client.userId });

  const start = process.cpuUsage();
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (stopping ??= (async () => {
      await client.stop();
      await store.close();
      if (errors > 0 || client.drops.total() > 0) {
        process.stderr.write(`bot child: ${errors} errors, ${client.drops.total()} inputs dropped\n`);
      }
    })().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`bot child: stop failed: ${String(e)}\n`);
        process.exit(1);
      },
    ));
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const { cmd } = JSON.parse(line) as { cmd?: string };
    if (cmd === 'cpu') say({ cpu: process.cpuUsage(start) });
    else if (cmd === 'stop') void shutdown();
  });
  lines.on('close', () => void shutdown());
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`bot child failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
