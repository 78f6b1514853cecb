/**
 * One replica's cost against its own message rate (issue #13, bench/replicas.ts): with more replicas
 * each one's share of the traffic falls, and what it pays per wake-up or per second (timers, polls,
 * per-batch commit work) is then spread over fewer messages. This measures it directly on the first
 * replica alone: CPU (the child's process.cpuUsage) and Postgres statements per message at several
 * open-loop rates, and per second when idle, with the idle statements by kind (what polls).
 *
 * The machine is shared and noisy: the rates run in rounds, ascending then descending, idle at each
 * round's start, and every figure is printed as the median and the spread (min–max) over the rounds.
 */
import { type Peer, pacedLoop } from './bot.js';
import type { BenchChild, ChildCpu } from './child.js';
import { heading, note, numbersFromEnv, sleep } from './harness.js';

/** `BENCH_REPLICAS_RATES=5,25`: the rates (messages per second) measured; `0` skips the sweep. */
const RATES = numbersFromEnv('BENCH_REPLICAS_RATES', [5, 10, 25, 50, 100]).filter((r) => r > 0);
/** Each rate's window; ≥ 20 s so a few-ms-per-second cost shows above the noise. */
const SECONDS = Number(process.env.BENCH_REPLICAS_RATE_SECONDS ?? 20);
const ROUNDS = Number(process.env.BENCH_REPLICAS_RATE_ROUNDS ?? 2);
/** Seconds at each new rate before measuring: the broker and the process settle on the new pace. */
const SETTLE_SECONDS = 2;

interface Sample {
  cpuMs: number;
  statements: number;
  messages: number;
  seconds: number;
  byKind: Record<string, number>;
  /** The child's garbage collections in the window: major ones, and pause ms in all. */
  gcMajor: number;
  gcMinor: number;
  gcMs: number;
}

/** Messages the replica processed: its conversation-state lookups, one per inbound message. */
const messages = (c: ChildCpu): number =>
  (c.work.state_cache_hit ?? 0) + (c.work.state_cache_stale ?? 0) + (c.work.state_cache_cold ?? 0);

/** Windows profiled so far (BENCH_REPLICAS_WINDOW_PROF, see bench/replicas-child.ts). */
let profiled = 0;
const PROFILE = process.env.BENCH_REPLICAS_WINDOW_PROF !== undefined;

async function sample(
  child: BenchChild,
  seconds: number,
  label: string,
  drive: () => Promise<unknown>,
): Promise<Sample> {
  if (PROFILE) {
    note(`window-${profiled++}.cpuprofile: ${label}`);
    child.signal('SIGUSR2');
  }
  const before = await child.cpu();
  const t0 = performance.now();
  await drive();
  const after = await child.cpu();
  if (PROFILE) child.signal('SIGUSR2');
  const byKind: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.queryKinds)) {
    const d = v - (before.queryKinds[k] ?? 0);
    if (d > 0) byKind[k] = d;
  }
  return {
    cpuMs: (after.micros - before.micros) / 1000,
    statements: after.queries - before.queries,
    messages: messages(after) - messages(before),
    seconds: Math.max((performance.now() - t0) / 1000, seconds),
    byKind,
    gcMajor: (after.work.gc_major ?? 0) - (before.work.gc_major ?? 0),
    gcMinor: (after.work.gc_minor ?? 0) - (before.work.gc_minor ?? 0),
    gcMs: (after.work.gc_ms ?? 0) - (before.work.gc_ms ?? 0),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** `median (min–max)` over the rounds. */
const spread = (xs: number[], digits: number): string =>
  xs.length === 1
    ? xs[0]!.toFixed(digits)
    : `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

/** Statements by kind summed over the rounds, per second (`per` seconds) or per message. */
function kinds(samples: readonly Sample[], per: 'seconds' | 'messages'): string {
  const sums = new Map<string, number>();
  let units = 0;
  for (const s of samples) {
    units += s[per];
    for (const [k, v] of Object.entries(s.byKind)) sums.set(k, (sums.get(k) ?? 0) + v);
  }
  const sorted = [...sums].sort((a, b) => b[1] - a[1]).filter(([, v]) => v / units >= 0.005);
  return sorted.map(([k, v]) => `${(v / units).toFixed(2)} ${k}`).join(', ') || 'none';
}

/**
 * The sweep on `child` (the only replica running), driven by `peers`: idle, then each rate, in
 * ROUNDS rounds alternating the order; prints one line per rate.
 */
export async function rateSweep(child: BenchChild, peers: readonly Peer[]): Promise<void> {
  if (RATES.length === 0 || ROUNDS <= 0) return;
  heading(
    `one replica's cost against its rate: open loop, ${SECONDS} s each, ${ROUNDS} round(s), median (min–max)`,
  );
  const once = (i: number): Promise<void> => peers[i]!.command('/ping');
  const idle: Sample[] = [];
  const byRate = new Map<number, Sample[]>(RATES.map((r) => [r, []]));
  for (let round = 0; round < ROUNDS; round++) {
    idle.push(await sample(child, SECONDS, 'idle', () => sleep(SECONDS * 1000)));
    const order = round % 2 === 0 ? RATES : [...RATES].reverse();
    for (const rate of order) {
      await pacedLoop(peers.length, rate, SETTLE_SECONDS, once);
      byRate
        .get(rate)!
        .push(
          await sample(child, SECONDS, `${rate} msg/s`, () => pacedLoop(peers.length, rate, SECONDS, once)),
        );
    }
  }
  note(
    `idle: ${spread(
      idle.map((s) => s.cpuMs / s.seconds),
      2,
    )} ms CPU/s, ${spread(
      idle.map((s) => s.statements / s.seconds),
      2,
    )} statements/s, ${spread(
      idle.map((s) => s.gcMajor / s.seconds),
      2,
    )} major GCs/s`,
  );
  note(`idle statements per second by kind: ${kinds(idle, 'seconds')}`);
  const idleCpuPerS = median(idle.map((s) => s.cpuMs / s.seconds));
  for (const rate of RATES) {
    const xs = byRate.get(rate)!.filter((s) => s.messages > 0);
    if (xs.length === 0) continue;
    const perMsg = xs.map((s) => s.cpuMs / s.messages);
    const net = xs.map((s) => (s.cpuMs - idleCpuPerS * s.seconds) / s.messages);
    note(
      `${String(rate).padStart(4)} msg/s: ${spread(perMsg, 2)} ms CPU/message ` +
        `(${spread(net, 2)} above idle), ${spread(
          xs.map((s) => s.statements / s.messages),
          2,
        )} statements/message, ${spread(
          xs.map((s) => s.messages / s.seconds),
          1,
        )} msg/s processed; GC ${spread(
          xs.map((s) => s.gcMs / s.messages),
          2,
        )} ms/message, ${spread(
          xs.map((s) => (100 * s.gcMajor) / s.messages),
          1,
        )} major and ${spread(
          xs.map((s) => (100 * s.gcMinor) / s.messages),
          1,
        )} minor GCs per 100 messages`,
    );
    note(`${String(rate).padStart(4)} msg/s statements per message by kind: ${kinds(xs, 'messages')}`);
  }
}
