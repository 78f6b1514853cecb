/**
 * A tiny benchmark helper: time a function for a number of iterations or a duration, and print
 * aligned lines `name: value unit (ratio x baseline)`. Numbers from a shared, noisy machine are
 * indications, so the helper reports rates and means only and never asserts on them.
 */
import { performance } from 'node:perf_hooks';

export interface Timing {
  /** Operations counted (a call may count several, see measure). */
  readonly ops: number;
  readonly calls: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Mean milliseconds per call. */
  readonly meanMs: number;
}

export interface MeasureOptions {
  /** Stop after this many calls. */
  readonly iterations?: number;
  /** Stop after this many seconds (default 1 when iterations is not given). */
  readonly seconds?: number;
  /** Untimed calls first, so the JIT has compiled the code being measured. */
  readonly warmup?: number;
}

function limits(options: MeasureOptions): { maxCalls: number; maxSeconds: number } {
  const maxCalls = options.iterations ?? Number.POSITIVE_INFINITY;
  const maxSeconds = options.seconds ?? (options.iterations === undefined ? 1 : Number.POSITIVE_INFINITY);
  return { maxCalls, maxSeconds };
}

function timing(ops: number, calls: number, seconds: number): Timing {
  return { ops, calls, seconds, perSecond: ops / seconds, meanMs: (seconds * 1000) / Math.max(calls, 1) };
}

/** Times `fn`; a call that returns a number counts as that many operations, else as one. */
export function measure(fn: () => number | void, options: MeasureOptions = {}): Timing {
  for (let i = 0; i < (options.warmup ?? 1); i++) fn();
  const { maxCalls, maxSeconds } = limits(options);
  let ops = 0;
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (calls < maxCalls && elapsed < maxSeconds) {
    const n = fn();
    ops += typeof n === 'number' ? n : 1;
    calls++;
    elapsed = (performance.now() - start) / 1000;
  }
  return timing(ops, calls, elapsed);
}

export async function measureAsync(
  fn: () => Promise<number | void>,
  options: MeasureOptions = {},
): Promise<Timing> {
  for (let i = 0; i < (options.warmup ?? 1); i++) await fn();
  const { maxCalls, maxSeconds } = limits(options);
  let ops = 0;
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (calls < maxCalls && elapsed < maxSeconds) {
    const n = await fn();
    ops += typeof n === 'number' ? n : 1;
    calls++;
    elapsed = (performance.now() - start) / 1000;
  }
  return timing(ops, calls, elapsed);
}

const NAME_WIDTH = 52;
const VALUE_WIDTH = 12;

/** Three significant digits with an SI suffix: 1.23 M, 456 k, 7.89. */
export function formatValue(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  const [scaled, suffix] =
    abs >= 1e9 ? [x / 1e9, ' G'] : abs >= 1e6 ? [x / 1e6, ' M'] : abs >= 1e4 ? [x / 1e3, ' k'] : [x, ''];
  const digits = Math.abs(scaled) >= 100 ? 0 : Math.abs(scaled) >= 10 ? 1 : 2;
  return `${scaled.toFixed(digits)}${suffix}`;
}

export interface Baseline {
  readonly name: string;
  readonly value: number;
}

/** Prints `name: value unit (ratio x baseline)`, columns aligned. */
export function report(name: string, value: number, unit: string, baseline?: Baseline): void {
  const ratio =
    baseline && baseline.value > 0 ? `  (${(value / baseline.value).toFixed(2)}x ${baseline.name})` : '';
  console.log(
    `  ${`${name}:`.padEnd(NAME_WIDTH)}${formatValue(value).padStart(VALUE_WIDTH)} ${unit}${ratio}`,
  );
}

export function heading(title: string): void {
  console.log(`\n${title}`);
}

export function note(text: string): void {
  console.log(`  (${text})`);
}

/** The value at quantile p (0..1) of an ascending array; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/**
 * Runs `n` loops of back-to-back round trips for `seconds`. Returns the latencies of the trips that
 * finished inside the window, and how many finished in all (in-flight ones are awaited).
 */
export async function closedLoop(
  n: number,
  seconds: number,
  once: (i: number) => Promise<void>,
): Promise<{ latencies: number[]; completed: number }> {
  const latencies: number[] = [];
  let completed = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await once(i);
        const end = performance.now();
        completed++;
        if (end <= deadline) latencies.push(end - t);
      }
    }),
  );
  return { latencies, completed };
}

/** A comma-separated list of numbers from the environment (quick runs on fewer sizes), else `fallback`. */
export function numbersFromEnv(name: string, fallback: readonly number[]): readonly number[] {
  const value = process.env[name];
  return value ? value.split(',').map(Number) : fallback;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it holds; throws after `ms` naming `what` was waited for. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
