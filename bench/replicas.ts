/**
 * One bot identity on 1, 2 and 3 replicas (issue #13): commands per second each sustains at 100
 * peers, and its command → reply latency at one common half load. Each replica is the echo bot in
 * its own child process (bench/replicas-child.ts: RelayClient + Postgres store + BotRuntime, one
 * slot of an MQTT 5 share group, leases for the single-owner duties), all on one Postgres schema;
 * the peers, the load generator, run in this process and drive them as bench/bot.ts does:
 *
 * - max: closed loop, every peer sends its next `/ping` as soon as the `pong` arrives;
 * - half load: open loop at half the FIRST configuration's (1 replica's) max, the same offered load
 *   for every count, so the p99s compare like with like.
 *
 * Replicas are added to the running set (1, then 2, then 3), with the same peers and sessions; a
 * new replica learns the sessions from the store in the warm-up. Every line carries its ratio to
 * the 1-replica figure of the same run. A private Mosquitto (set_tcp_nodelay) is required: the
 * embedded broker has no shared subscriptions.
 *
 * Before the counts, the first replica alone is measured against its own message rate
 * (bench/replicas-rates.ts): what a replica pays per second or per wake-up rather than per message
 * shows there, and it is what grows per command as replicas are added.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { startPrivateBroker, type TestBroker } from '../test/support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { createPeers, latenciesOf, pacedLoop, printWindow, type Peer, type Window } from './bot.js';
import { BenchChild, type ChildCpu } from './child.js';
import { inBatches } from './clients.js';
import { cpuMeter } from './cpu.js';
import { heading, note, numbersFromEnv, percentile, report } from './harness.js';
import { rateSweep } from './replicas-rates.js';

/**
 * `BENCH_REPLICAS=1,3` runs some counts only; the first is the baseline. `BENCH_REPLICAS=0` runs only
 * the one-replica rate sweep (bench/replicas-rates.ts).
 */
const REPLICA_COUNTS = numbersFromEnv('BENCH_REPLICAS', [1, 2, 3]).filter((n) => n > 0);
const PEERS = Number(process.env.BENCH_REPLICAS_PEERS ?? 100);
const SECONDS = Number(process.env.BENCH_REPLICAS_SECONDS ?? 8);
/**
 * Longer than bench/bot.ts's: a replica just added loads the sessions' access keys here.
 * `BENCH_REPLICAS_WARMUP_SECONDS` lengthens it (a fresh process runs its code unoptimised at first).
 */
const WARMUP_SECONDS = Number(process.env.BENCH_REPLICAS_WARMUP_SECONDS ?? 3);
const PEER_BATCH = 10;
/** Each count's idle window, before its warm-up: what the replicas cost with no command. */
const IDLE_SECONDS = 3;
/** `BENCH_REPLICAS_CPU_PROF=<dir>` runs each replica with --cpu-prof, profile written there on exit. */
const CPU_PROF_DIR = process.env.BENCH_REPLICAS_CPU_PROF;
/** `BENCH_REPLICAS_NODE_FLAGS='--flag …'`: node flags for every replica (A/B of V8 settings). */
const NODE_FLAGS = (process.env.BENCH_REPLICAS_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

interface Replicas {
  readonly children: BenchChild[];
  readonly botId: string;
  /** Starts one more replica (slot = how many run already). */
  add(): Promise<void>;
  stop(): Promise<void>;
}

function startReplicas(url: string, prefix: string, schema: string, shareGroup: string): Replicas {
  const children: BenchChild[] = [];
  let botId = '';
  return {
    children,
    get botId() {
      return botId;
    },
    add: async () => {
      const slot = children.length;
      const { child, ready } = await BenchChild.start(
        'replicas-child.ts',
        [url, prefix, PG_URL, schema, shareGroup, String(slot)],
        {
          nodeFlags: [
            ...(CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : []),
            ...NODE_FLAGS,
          ],
        },
      );
      children.push(child);
      const id = String(ready.userId);
      if (botId && id !== botId) throw new Error(`replica ${slot} is ${id}, not the identity ${botId}`);
      botId = id;
    },
    stop: async () => {
      await Promise.all(children.map((c) => c.stop()));
    },
  };
}

/** Like bench/bot.ts's measured(), with the CPU of every replica summed (and each one's noted). */
async function measuredAll(
  children: readonly BenchChild[],
  seconds: number,
  drive: () => Promise<number[]>,
): Promise<{ window: Window; perReplicaCpuMs: number[]; perOwnMessage: string; work: string }> {
  const before: ChildCpu[] = await Promise.all(children.map((c) => c.cpu()));
  const meter = cpuMeter();
  const latencies = await drive();
  const self = meter();
  const after: ChildCpu[] = await Promise.all(children.map((c) => c.cpu()));
  latencies.sort((a, b) => a - b);
  const n = Math.max(latencies.length, 1);
  const perReplica = after.map((a, i) => (a.micros - before[i]!.micros) / 1000);
  const queries = after.reduce((q, a, i) => q + a.queries - before[i]!.queries, 0);
  return {
    window: {
      count: latencies.length,
      perSecond: latencies.length / seconds,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      childCpuMs: perReplica.reduce((x, y) => x + y, 0) / n,
      selfCpuMs: self.selfMs / n,
      queries: queries / n,
      machineBusy: self.machineBusy,
    },
    perReplicaCpuMs: perReplica.map((ms) => ms / n),
    perOwnMessage: perOwnMessage(before, after),
    work: workPerCommand(before, after, n),
  };
}

/** The replicas' work counters (RelayClient.work), summed, per command; those that moved only. */
function workPerCommand(before: readonly ChildCpu[], after: readonly ChildCpu[], n: number): string {
  const sums = new Map<string, number>();
  after.forEach((a, i) => {
    for (const [k, v] of Object.entries(a.work))
      sums.set(k, (sums.get(k) ?? 0) + v - (before[i]!.work[k] ?? 0));
  });
  const moved = [...sums].filter(([, v]) => v > 0).map(([k, v]) => `${(v / n).toFixed(2)} ${k}`);
  return `work per command: ${moved.length > 0 ? moved.join(', ') : 'none counted'}`;
}

/** A conversation's decoded state looked up, once per inbound message (RelayClient.work). */
const lookups = (c: ChildCpu): number =>
  (c.work.state_cache_hit ?? 0) + (c.work.state_cache_stale ?? 0) + (c.work.state_cache_cold ?? 0);

/**
 * CPU and Postgres statements per message the replicas processed (their state lookups), in all and
 * each: unlike the per-command figures, these do not depend on how many round trips ended inside
 * the window (a closed loop's late replies are not counted, their CPU is), and replicas that took
 * unequal shares, or one still warming up, compare like with like.
 */
function perOwnMessage(before: readonly ChildCpu[], after: readonly ChildCpu[]): string {
  const per = (ms: number, messages: number): string => (messages > 0 ? (ms / messages).toFixed(2) : '-');
  let allMs = 0;
  let allMessages = 0;
  let allQueries = 0;
  const each = after.map((a, i) => {
    const messages = lookups(a) - lookups(before[i]!);
    const ms = (a.micros - before[i]!.micros) / 1000;
    allMs += ms;
    allMessages += messages;
    allQueries += a.queries - before[i]!.queries;
    return `#${i} ${per(ms, messages)} ms (${messages})`;
  });
  return (
    `per message processed: ${per(allMs, allMessages)} ms CPU, ${per(allQueries, allMessages)} statements; ` +
    `CPU by replica (messages): ${each.join(', ')}`
  );
}

/** What the replicas cost with no command: CPU ms and Postgres statements per second, each. */
async function idleCost(children: readonly BenchChild[], seconds: number): Promise<string> {
  const before = await Promise.all(children.map((c) => c.cpu()));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await Promise.all(children.map((c) => c.cpu()));
  const each = after.map((a, i) => {
    const cpu = (a.micros - before[i]!.micros) / 1000 / seconds;
    const statements = (a.queries - before[i]!.queries) / seconds;
    return `#${i} ${cpu.toFixed(1)} ms CPU, ${statements.toFixed(1)} statements`;
  });
  return `idle, per second: ${each.join('; ')}`;
}

const cpuSplit = (perReplica: readonly number[]): string =>
  `CPU per command by replica: ${perReplica.map((ms, i) => `#${i} ${ms.toFixed(2)} ms`).join(', ')}`;

async function runCounts(replicas: Replicas, peers: Peer[]): Promise<void> {
  const once = (i: number): Promise<void> => peers[i]!.command('/ping');
  let baseline: { count: number; max: number; p99: number } | undefined;
  let halfRate = 0;
  for (const count of REPLICA_COUNTS) {
    while (replicas.children.length < count) await replicas.add();
    heading(`echo bot, ${count} replica${count === 1 ? '' : 's'}, ${PEERS} peers (/ping → pong)`);
    note(await idleCost(replicas.children, IDLE_SECONDS));
    await latenciesOf(PEERS, WARMUP_SECONDS, once);
    const max = await measuredAll(replicas.children, SECONDS, () => latenciesOf(PEERS, SECONDS, once));
    const name = baseline && `${baseline.count} replica${baseline.count === 1 ? '' : 's'}`;
    printWindow('max, closed loop', max.window, name ? { name, value: baseline!.max } : undefined);
    note(cpuSplit(max.perReplicaCpuMs));
    note(max.perOwnMessage);
    note(max.work);
    if (!baseline) halfRate = max.window.perSecond / 2;
    const half = await measuredAll(replicas.children, SECONDS, () =>
      pacedLoop(PEERS, halfRate, SECONDS, once),
    );
    printWindow(`half load, open loop at ${halfRate.toFixed(0)} cmd/s`, half.window);
    report('half load: p99', half.window.p99, 'ms', name ? { name, value: baseline!.p99 } : undefined);
    note(cpuSplit(half.perReplicaCpuMs));
    note(half.perOwnMessage);
    note(half.work);
    baseline ??= { count, max: max.window.perSecond, p99: half.window.p99 };
  }
}

export async function run(): Promise<void> {
  if (!(await postgresAnswers())) {
    note(`Postgres at ${new URL(PG_URL).host} does not answer: the replicas bench needs it, skipped`);
    return;
  }
  let broker: TestBroker;
  try {
    broker = await startPrivateBroker('mosquitto');
  } catch (e) {
    note(`no private Mosquitto (${(e as Error).message}): replicas need shared subscriptions, skipped`);
    return;
  }
  const schema = `relay_bench_replicas_${hex(6)}`;
  await createPgSchema(schema);
  const prefix = `bench-replicas-${hex(4)}`;
  const replicas = startReplicas(broker.url, prefix, schema, `bench-${hex(4)}`);
  const peers: Peer[] = [];
  note(`broker: private mosquitto (set_tcp_nodelay true) at ${broker.url}; Postgres fresh schema`);
  note('each replica in its own child process; the peers (load generator) in this process');
  try {
    await replicas.add();
    const t0 = performance.now();
    peers.push(...(await createPeers(broker.url, prefix, replicas.botId, PEERS)));
    await inBatches(PEERS, PEER_BATCH, (i) => peers[i]!.command('/ping'));
    note(
      `${PEERS} peers started and made first contact in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    await rateSweep(replicas.children[0]!, peers);
    await runCounts(replicas, peers);
  } finally {
    await Promise.all(peers.map((p) => p.client.stop().catch(() => undefined)));
    await replicas.stop();
    await dropPgSchema(schema);
    await broker.close();
  }
}
