/**
 * The bot runtime end to end: how many commands per second ONE bot process sustains, and its
 * command → reply latency at half that load. The bot (RelayClient + TypeOrmRelayStore on Postgres
 * with a fresh schema and the default synchronous_commit + BotRuntime(EchoBot)) runs in its own
 * child process (bench/bot-child.ts); N peers (MemoryRelayStore, first contact made before timing)
 * run in this process and send `/ping`, each waiting for its `pong`:
 *
 * - max: closed loop, every peer sends its next `/ping` as soon as the `pong` arrives;
 * - half load: open loop, `/ping`s paced at 50 % of the measured max, spread over the N peers;
 *   latency counts from when a command was due, so a stall is not hidden by sending later.
 *
 * Baseline in the same run: the transport-only ceiling, the same N-peer QoS 1 request/reply through
 * the same broker on plain MqttTransport with the echo in a child process too.
 *
 * The machine is small (2 cores shared by bot, peers, Mosquitto and Postgres), so each line is
 * followed by the CPU the bot child and this process spent per command and how busy the machine
 * was: that says which of them limited the figure.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { RelayClient, ReceivedMessage } from '../framework/relay/index.js';
import { startPrivateBroker } from '../test/support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { createRawPeers, withTimeout } from './raw-peers.js';
import { BenchChild } from './child.js';
import { benchClient, inBatches } from './clients.js';
import { cpuMeter } from './cpu.js';
import { rawCommandCryptoMs } from './crypto-bound.js';
import { closedLoop, heading, note, numbersFromEnv, percentile, report, sleep } from './harness.js';

/** `BENCH_BOT_N=100` runs one peer count only (quick A/B runs). */
const PEER_COUNTS = numbersFromEnv('BENCH_BOT_N', [10, 100]);
const SECONDS = Number(process.env.BENCH_BOT_SECONDS ?? 8);
const RAW_SECONDS = 4;
const WARMUP_SECONDS = 1.5;
const PEER_BATCH = 10;
const RAW_PAYLOAD_BYTES = 600;
/** `BENCH_BOT_CPU_PROF=<dir>` runs the bot child with --cpu-prof, profile written there on exit. */
const CPU_PROF_DIR = process.env.BENCH_BOT_CPU_PROF;
/**
 * `BENCH_BOT_SYNC_COMMIT=off` runs the bot's Postgres sessions with synchronous_commit off: a figure
 * for what the WAL flush per commit costs, never a default (a crash could lose acknowledged work).
 */
const SYNC_COMMIT_OFF = process.env.BENCH_BOT_SYNC_COMMIT === 'off';

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

// ---- measuring ----------------------------------------------------------------------------------

export interface Window {
  /** Commands whose reply arrived inside the window. */
  readonly count: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU ms per command: the bot (or echo) child, and this process (peers). */
  readonly childCpuMs: number;
  readonly selfCpuMs: number;
  /** Postgres statements the bot child sent per command. */
  readonly queries: number;
  /** The same per command by kind (bench/bot-statements.ts), when the child counts them. */
  readonly queryKinds?: Readonly<Record<string, number>>;
  /** Share of the machine's CPU time that was busy during the window (all processes), %. */
  readonly machineBusy: number;
}

/** Runs `drive` (which returns the latencies inside the window) while sampling CPU. */
async function measured(child: BenchChild, seconds: number, drive: () => Promise<number[]>): Promise<Window> {
  const childBefore = await child.cpu();
  const meter = cpuMeter();
  const latencies = await drive();
  const self = meter();
  const childAfter = await child.cpu();
  latencies.sort((a, b) => a - b);
  const n = Math.max(latencies.length, 1);
  return {
    count: latencies.length,
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    childCpuMs: (childAfter.micros - childBefore.micros) / 1000 / n,
    selfCpuMs: self.selfMs / n,
    queries: (childAfter.queries - childBefore.queries) / n,
    queryKinds: Object.fromEntries(
      Object.entries(childAfter.queryKinds).map(([k, v]) => [k, (v - (childBefore.queryKinds[k] ?? 0)) / n]),
    ),
    machineBusy: self.machineBusy,
  };
}

/** n loops of back-to-back round trips; round trips finishing after the deadline are not counted. */
export async function latenciesOf(
  n: number,
  seconds: number,
  once: (i: number) => Promise<void>,
): Promise<number[]> {
  return (await closedLoop(n, seconds, once)).latencies;
}

/**
 * Open loop: `rate` commands per second, round robin over the n peers, each timed from when it was
 * due (not when the event loop got round to sending it). All of them are awaited.
 */
export async function pacedLoop(
  n: number,
  rate: number,
  seconds: number,
  once: (i: number) => Promise<void>,
): Promise<number[]> {
  const latencies: number[] = [];
  const inFlight: Array<Promise<void>> = [];
  const total = Math.floor(rate * seconds);
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - start) / 1000) * rate) + 1);
    for (; sent < due; sent++) {
      const dueAt = start + (sent / rate) * 1000;
      inFlight.push(once(sent % n).then(() => void latencies.push(performance.now() - dueAt)));
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  return latencies;
}

export function printWindow(
  label: string,
  w: Window,
  baseline?: { name: string; value: number },
  cryptoBoundMs?: number,
): void {
  report(`${label}: commands/s`, w.perSecond, 'cmd/s', baseline);
  report(`${label}: p50 / p99`, w.p50, `/ ${w.p99.toFixed(2)} ms`);
  const bound =
    cryptoBoundMs === undefined ? '' : ` (${(w.childCpuMs / cryptoBoundMs).toFixed(1)}x the crypto bound)`;
  note(
    `CPU per command: child ${w.childCpuMs.toFixed(2)} ms${bound}, peers' process ${w.selfCpuMs.toFixed(2)} ms; ` +
      (w.queries > 0 ? `${w.queries.toFixed(1)} Postgres statements; ` : '') +
      `machine ${w.machineBusy.toFixed(0)} % busy (2 cores = 100 %)`,
  );
  const kinds = Object.entries(w.queryKinds ?? {}).filter(([, v]) => v > 0);
  if (kinds.length > 0)
    note(
      `statements per command by kind: ${kinds
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(', ')}`,
    );
}

// ---- the transport-only ceiling -----------------------------------------------------------------

async function rawCeiling(url: string): Promise<Map<number, Window>> {
  const out = new Map<number, Window>();
  for (const n of PEER_COUNTS) {
    const base = `bench-bot-raw-${hex(4)}`;
    const { child } = await BenchChild.start('bot-child.ts', ['echo', url, base]);
    const raw = createRawPeers(url, base, n, RAW_PAYLOAD_BYTES);
    const once = raw.once;
    try {
      await raw.connect();
      await latenciesOf(n, 0.5, once);
      const w = await measured(child, RAW_SECONDS, () => latenciesOf(n, RAW_SECONDS, once));
      out.set(n, w);
      printWindow(`raw ${n} peers, closed loop`, w);
    } finally {
      await raw.end();
      await child.stop();
    }
  }
  return out;
}

// ---- the bot ------------------------------------------------------------------------------------

/** A peer that matches each `pong` to the `/ping` it answers (replyTo = the command's id). */
export class Peer {
  private readonly waiters = new Map<string, () => void>();

  constructor(
    readonly client: RelayClient,
    private readonly botId: string,
  ) {
    client.on('message', (m: ReceivedMessage) => {
      if (m.from !== botId || m.content.replyTo === undefined) return;
      const w = this.waiters.get(m.content.replyTo);
      if (!w) return;
      if (m.content.content !== 'pong')
        throw new Error(`unexpected reply ${JSON.stringify(m.content.content)}`);
      this.waiters.delete(m.content.replyTo);
      w();
    });
  }

  async command(text: string): Promise<void> {
    const id = randomUUID();
    const got = new Promise<void>((r) => this.waiters.set(id, r));
    await this.client.send(this.botId, { content: text, id });
    await withTimeout(got, `reply to ${text}`);
  }
}

export function createPeers(url: string, prefix: string, botId: string, count: number): Promise<Peer[]> {
  return inBatches(count, PEER_BATCH, async () => {
    const c = await benchClient(url, prefix, { powBits: 8 });
    await c.start();
    return new Peer(c, botId);
  });
}

async function botRuns(url: string, raw: Map<number, Window>, cryptoMs: number): Promise<void> {
  const schema = `relay_bench_bot_${hex(6)}`;
  await createPgSchema(schema);
  const prefix = `bench-bot-${hex(4)}`;
  let child: BenchChild | undefined;
  const peers: Peer[] = [];
  try {
    // The URL's options replace the search_path the store sets for its schema, so both go in it.
    const pgUrl = SYNC_COMMIT_OFF
      ? withSessionOptions(PG_URL, [`search_path=${schema}`, 'synchronous_commit=off'])
      : PG_URL;
    if (SYNC_COMMIT_OFF)
      note('bot sessions run with synchronous_commit=off (a figure only, never a default)');
    const started = await BenchChild.start('bot-child.ts', ['bot', url, prefix, pgUrl, schema], {
      nodeFlags: CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [],
    });
    child = started.child;
    const botId = String(started.ready.userId);
    const maxPeers = Math.max(...PEER_COUNTS);
    const t0 = performance.now();
    peers.push(...(await createPeers(url, prefix, botId, maxPeers)));
    await inBatches(maxPeers, PEER_BATCH, (i) => peers[i]!.command('/ping'));
    note(
      `${maxPeers} peers started and made first contact in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    for (const n of PEER_COUNTS) {
      const active = peers.slice(0, n);
      const once = (i: number): Promise<void> => active[i]!.command('/ping');
      heading(`echo bot, ${n} peers (/ping → pong)`);
      await latenciesOf(n, WARMUP_SECONDS, once);
      const max = await measured(child, SECONDS, () => latenciesOf(n, SECONDS, once));
      const base = raw.get(n);
      printWindow(
        `max, closed loop`,
        max,
        base && { name: `transport-only ${formatRate(base.perSecond)}/s`, value: base.perSecond },
        cryptoMs,
      );
      const rate = max.perSecond / 2;
      const half = await measured(child, SECONDS, () => pacedLoop(n, rate, SECONDS, once));
      printWindow(`half load, open loop at ${rate.toFixed(0)} cmd/s`, half, undefined, cryptoMs);
    }
  } finally {
    await Promise.all(peers.map((p) => p.client.stop().catch(() => undefined)));
    await child?.stop();
    await dropPgSchema(schema);
  }
}

const formatRate = (x: number): string => x.toFixed(0);

/**
 * `url` with `-c <setting>` for each setting in the options sent to the server at connect time.
 * pg lets a connection string's options override the store's own (its search_path), hence both.
 */
function withSessionOptions(url: string, settings: readonly string[]): string {
  const u = new URL(url);
  u.searchParams.set('options', settings.map((s) => `-c ${s}`).join(' '));
  return u.toString();
}

export async function run(): Promise<void> {
  if (!(await postgresAnswers())) {
    note(`Postgres at ${new URL(PG_URL).host} does not answer: the bot bench needs it, skipped`);
    return;
  }
  const broker = await startPrivateBroker('mosquitto');
  note(`broker: private mosquitto (set_tcp_nodelay true) at ${broker.url}; Postgres fresh schema`);
  note('bot / echo in a child process; peers (RelayClient, MemoryRelayStore) in this process');
  try {
    heading(`transport-only ceiling: N peers, QoS 1 request/reply ${RAW_PAYLOAD_BYTES} B, echo in a child`);
    const raw = await rawCeiling(broker.url);
    const cryptoMs = rawCommandCryptoMs();
    report('raw crypto bound per command (HPKE open+seal, MLS decrypt+encrypt, node:crypto)', cryptoMs, 'ms');
    await botRuns(broker.url, raw, cryptoMs);
  } finally {
    await broker.close();
  }
}
