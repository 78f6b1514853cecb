/**
 * The receiving member of bench/group-receive-e2e.ts, in its own process so that its CPU is its own:
 *
 *   group-receive-child.ts <brokerUrl> <prefix> memory
 *   group-receive-child.ts <brokerUrl> <prefix> postgres <postgresUrl> <schema>
 *
 * A RelayClient with no handler: every group message goes the whole inbound way (transport, topic
 * lane, store load, MLS, commit, the 'message' event) and nothing else. JSON lines to the parent
 * (bench/child.ts): `{"ready":true,"userId":…}`, `{"joined":groupId}`, and `{"got":n}` every
 * REPORT_EVERY group messages (not each: the line would be part of what is measured); the CPU
 * answers of serveParent carry the Postgres statements sent and the client's work counters.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import pg from 'pg';
import { MemoryRelayStore, type RelayStore } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { runChild, say, serveParent, troubleReport } from './child.js';
import { benchClient } from './clients.js';

const REPORT_EVERY = 25;
/** The parent's warm-up: a profile starts after it. */
const WARMUP = 50;
const PROFILE = process.env.BENCH_GROUP_RECEIVE_E2E_PROF;

/** Statements sent to Postgres (TypeORM's pg driver shares this module), to report per message. */
let queries = 0;
const pgQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
(pg.Client.prototype as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
  queries++;
  return pgQuery.apply(this, args);
};

async function openStore(kind: string, pgUrl?: string, schema?: string): Promise<RelayStore> {
  if (kind === 'memory') return new MemoryRelayStore();
  if (kind === 'postgres' && pgUrl && schema) {
    return new TypeOrmRelayStore(await createRelayDataSource({ url: pgUrl, schema }));
  }
  throw new Error('usage: group-receive-child.ts <brokerUrl> <prefix> memory | postgres <pgUrl> <schema>');
}

async function main(argv: readonly string[]): Promise<void> {
  const [url, prefix, kind, pgUrl, schema] = argv;
  if (!url || !prefix || !kind)
    throw new Error('usage: group-receive-child.ts <brokerUrl> <prefix> <store> …');
  const store = await openStore(kind, pgUrl, schema);
  const client = await benchClient(url, prefix, {
    store,
    powBits: 8,
    welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
    groups: { commitDelayMs: 20 },
  });
  const reportTrouble = troubleReport(client);
  let got = 0;
  client.on('group', (e) => {
    if (e.kind === 'joined') say({ joined: e.groupId });
  });
  const profiler = PROFILE ? new Session() : undefined;
  profiler?.connect();
  client.on('message', (m) => {
    if (m.conversation.kind !== 'group' || ++got % REPORT_EVERY !== 0) return;
    if (got === WARMUP && profiler) {
      void profiler.post('Profiler.enable').then(() => profiler.post('Profiler.start'));
    }
    say({ got });
  });
  await client.start();
  say({ ready: true, userId: client.userId });
  serveParent(
    async () => {
      await client.stop();
      await store.close();
      reportTrouble();
      if (profiler) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(`${PROFILE}-${kind}-${process.pid}.cpuprofile`, JSON.stringify(profile));
      }
    },
    () => ({ queries, work: client.work.snapshot() }),
  );
}

runChild(main);
