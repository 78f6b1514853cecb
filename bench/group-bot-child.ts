/**
 * The bot of bench/group-bot.ts, in its own process so its CPU is its own:
 *
 *   group-bot-child.ts <brokerUrl> <prefix> memory
 *   group-bot-child.ts <brokerUrl> <prefix> postgres <postgresUrl> <schema>
 *
 * A RelayClient whose transactional handler answers every "/echo x" with "echo: x" in the same
 * conversation: to the sender's inbox for a 1:1 message, on the group topic for a group message.
 *
 * JSON lines to the parent (bench/child.ts): `{"ready":true,"userId":…}` once serving,
 * `{"joined":groupId}` for each group joined, `{"cpu":{user,system},"queries":n,"work":{…}}` in
 * answer to `{"cmd":"cpu"}` (CPU µs and Postgres statements since start, RelayClient.work). On
 * `{"cmd":"stop"}` (or stdin closing) it stops and exits, which is when --cpu-prof writes.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import pg from 'pg';
import { MemoryRelayStore, type RelayStore } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { runChild, say, serveParent, troubleReport } from './child.js';
import { benchClient } from './clients.js';

/**
 * Statements sent to Postgres and bytes read back from it (TypeORM's pg driver shares this
 * module), to report per command: the bytes say what each message's reads carry, whatever the load.
 */
let queries = 0;
let pgBytesIn = 0;
const counted = new WeakSet<object>();
const pgQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
(pg.Client.prototype as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
  queries++;
  const stream = (this as unknown as { connection?: { stream?: NodeJS.ReadableStream } }).connection?.stream;
  if (stream && !counted.has(stream)) {
    counted.add(stream);
    stream.on('data', (chunk: Buffer) => void (pgBytesIn += chunk.length));
  }
  return pgQuery.apply(this, args);
};

/**
 * `BENCH_GROUP_BOT_WINDOW_PROF=<file>`: a V8 CPU profile from the first group command the handler
 * sees to the stop, written to <file> (the group's commands only, not start-up, joins or the 1:1
 * baseline; sum it with bench/bot-profile.ts).
 */
const WINDOW_PROF = process.env.BENCH_GROUP_BOT_WINDOW_PROF;
let profiler: Session | undefined;

function profileFromHere(): void {
  if (!WINDOW_PROF || profiler) return;
  profiler = new Session();
  profiler.connect();
  void profiler.post('Profiler.enable').then(() => profiler!.post('Profiler.start'));
}

async function writeProfile(): Promise<void> {
  if (!profiler || !WINDOW_PROF) return;
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(WINDOW_PROF, JSON.stringify(profile));
}

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
  const client = await benchClient(url, prefix, {
    store,
    powBits: 8,
    welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
    groups: { commitDelayMs: 20 },
  });
  const reportTrouble = troubleReport(client);
  client.on('group', (e) => {
    if (e.kind === 'joined') say({ joined: e.groupId });
  });
  client.setMessageHandler((m, reply) => {
    const text = m.content.content;
    if (m.conversation.kind === 'group') profileFromHere();
    if (text.startsWith('/echo ')) reply(`echo: ${text.slice('/echo '.length)}`);
  });
  await client.start();
  say({ ready: true, userId: client.userId });
  serveParent(
    async () => {
      await writeProfile();
      await client.stop();
      await store.close();
      reportTrouble();
    },
    () => ({ queries, work: { ...client.work.snapshot(), pg_bytes_in: pgBytesIn } }),
  );
}

runChild(main);
