/**
 * One replica of the echo bot for bench/replicas.ts, in its own process:
 *
 *   replicas-child.ts <brokerUrl> <prefix> <postgresUrl> <schema> <shareGroup> <slot>
 *
 * RelayClient + TypeOrmRelayStore (Postgres, the schema every replica shares) + BotRuntime(EchoBot),
 * subscribed as slot <slot> of the MQTT 5 share group, with a LeaseKeeper on the schema's leases
 * for the single-owner duties and the client's replica options, as `relay-bot start` wires a
 * replica. The first replica started on
 * an empty schema creates the identity; the others load it. Speaks bench/child.ts's JSON lines; its
 * CPU answers carry the Postgres statements sent and the client's work counters (RelayClient.work).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { BotRuntime } from '../framework/bot/index.js';
import { DUTY, LeaseKeeper, replicaSlotLease } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { EchoBot } from '../bots/echo/index.js';
import { benchClient } from './clients.js';
import { runChild, say, serveParent, troubleReport } from './child.js';
import { countStatements } from './bot-statements.js';

/** Postgres statements sent, in all and by kind (bench/bot-statements.ts, as bench/bot-child.ts counts). */
const statements = countStatements();

/**
 * `BENCH_REPLICAS_WINDOW_PROF=<dir>`: each SIGUSR2 starts a CPU profile and the next one writes it
 * to <dir>/window-<n>.cpuprofile (bench/replicas-rates.ts marks its windows so), for
 * bench/bot-profile.ts: the profile of one window only (idle, or one rate), not of the start-up.
 */
function profileWindowsOnSignal(dir: string): void {
  const session = new Session();
  session.connect();
  let n = 0;
  let on = false;
  process.on('SIGUSR2', () => {
    on = !on;
    void (async () => {
      if (on) {
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        return;
      }
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(join(dir, `window-${n++}.cpuprofile`), JSON.stringify(profile));
    })();
  });
}

/** Garbage collections by kind (`gc_major`, `gc_minor`, …) and their pause ms (`gc_ms`). */
const gc: Record<string, number> = {};
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'gc_major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'gc_minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'gc_incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'gc_weakcb',
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind =
      GC_KINDS[((e as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind ?? -1] ??
      'gc_other';
    gc[kind] = (gc[kind] ?? 0) + 1;
    gc.gc_ms = (gc.gc_ms ?? 0) + e.duration;
  }
}).observe({ entryTypes: ['gc'] });

async function main(argv: readonly string[]): Promise<void> {
  const [url, prefix, pgUrl, schema, shareGroup, slotText] = argv;
  const slot = Number(slotText);
  const profDir = process.env.BENCH_REPLICAS_WINDOW_PROF;
  if (profDir) profileWindowsOnSignal(profDir);
  if (!url || !prefix || !pgUrl || !schema || !shareGroup || !Number.isInteger(slot)) {
    throw new Error('usage: replicas-child.ts <brokerUrl> <prefix> <pgUrl> <schema> <shareGroup> <slot>');
  }
  const store = new TypeOrmRelayStore(await createRelayDataSource({ url: pgUrl, schema }));
  const keeper = new LeaseKeeper({ store: store.leases, replica: { replicaId: `${shareGroup}/${slot}` } });
  keeper.on('error', () => undefined);
  Object.values(DUTY).forEach((d) => keeper.want(d));
  // A fixed slot's lease, as cli/replica.ts startReplica takes it.
  keeper.want(replicaSlotLease(slot), { keepWhileFenced: true });
  await keeper.start();
  const client = await benchClient(url, prefix, {
    store,
    powBits: 8,
    broker: { url, shareGroup, replicaSlot: slot },
    duties: keeper,
    // As cli/commands/start.ts replicaClientOptions: the replica timers and sweeps a real replica
    // runs (group sync, outbox orphans, slot sessions, its session lease) cost here too.
    replica: { replicaId: keeper.holder, registry: store.leases, membership: keeper, sessionKeeper: keeper },
    // 100 peers make first contact within a second or two; the default quota would refuse most.
    welcomeQuota: { perSenderPerMinute: 5, totalPerMinute: 100_000 },
  });
  const reportTrouble = troubleReport(client);
  const runtime = new BotRuntime(new EchoBot());
  runtime.attach(client, { store, duties: keeper });
  await client.start();
  say({ ready: true, userId: client.userId });
  serveParent(
    async () => {
      await runtime.stop();
      await client.stop();
      await runtime.detach();
      await keeper.stop();
      await store.close();
      reportTrouble();
    },
    () => ({ ...statements(), work: { ...client.work.snapshot(), ...gc } }),
  );
}

runChild(main);
