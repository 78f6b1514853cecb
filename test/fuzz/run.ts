/**
 * `npm run fuzz -- [--runs N] [--seconds S] [--target a,b] [--seed X]`: mutation fuzzing of every
 * network decoder and of the inbound pipeline (targets.ts). Per target it first replays the seeds and
 * the checked-in corpus (test/fuzz/corpus/<target>/), then runs N mutated inputs (or S seconds,
 * whichever ends first), keeping an input that produced an outcome not seen before as a new parent
 * (outcome-guided: the error class and message stand in for coverage, see README in this folder).
 * Reports executions, findings (exceptions other than our typed errors) and RSS at start and end;
 * findings are written to test/fuzz/findings/ and make the exit code 1.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { corpusFiles } from './corpus-files.js';
import { Rng, mutate } from './mutator.js';
import { decoderTargets, isExpected, pipelineTarget, type FuzzTarget } from './targets.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FINDINGS_DIR = join(HERE, 'findings');
const MAX_PARENTS = 1024;
const MAX_SAVED_FINDINGS = 20;
/** Outcome labels remembered per target: bounded, so memory stays flat however long a run is. */
const MAX_OUTCOMES = 4096;
/** Longest an async target may take for one input (the pipeline's own timeouts are 10 s). */
const HANG_MS = 30_000;
/** An input slower than this is saved for a look (not a finding: some paths wait on timeouts). */
const SLOW_MS = 1_000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Options {
  runs: number;
  seconds: number;
  targets: string[] | undefined;
  seed: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { runs: 100_000, seconds: Infinity, targets: undefined, seed: Date.now() >>> 0 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    const need = (): string => {
      if (value === undefined) throw new Error(`${argv[i]} needs a value`);
      i++;
      return value;
    };
    switch (argv[i]) {
      case '--runs':
        opts.runs = Number(need());
        break;
      case '--seconds':
        opts.seconds = Number(need());
        break;
      case '--target':
        opts.targets = need().split(',');
        break;
      case '--seed':
        opts.seed = Number(need()) >>> 0;
        break;
      default:
        throw new Error(`unknown option ${argv[i]}; use --runs N, --seconds S, --target a,b, --seed X`);
    }
  }
  if (!Number.isFinite(opts.runs) || opts.runs < 0) throw new Error('--runs must be a number ≥ 0');
  return opts;
}

const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);

function rss(): number {
  gc();
  return process.memoryUsage().rss;
}

interface Report {
  target: string;
  executions: number;
  findings: number;
  kinds: Map<string, number>;
  outcomes: number;
  rssStart: number;
  /** After a tenth of --runs (0 when --seconds ended the run first): JIT, corpus and heap grown. */
  rssWarm: number;
  rssEnd: number;
  seconds: number;
  slow: number;
}

/** An input whose outcome never came: the target (and everything queued behind it) is stuck. */
class HangError extends Error {
  override name = 'Hang';
}

function withinHangLimit(result: Promise<string>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`no outcome within ${HANG_MS} ms`)), HANG_MS);
  });
  return Promise.race([result, limit]).finally(() => clearTimeout(timer));
}

async function runOne(target: FuzzTarget, input: Uint8Array): Promise<string | Error> {
  try {
    const r = target.run(input);
    return typeof r === 'string' ? r : await withinHangLimit(r);
  } catch (e) {
    if (isExpected(e)) return 'typed error escaped';
    return e instanceof Error ? e : new Error(String(e));
  }
}

function saveInput(prefix: string, input: Uint8Array, note: string): string {
  mkdirSync(FINDINGS_DIR, { recursive: true });
  const name = `${prefix}-${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`;
  writeFileSync(join(FINDINGS_DIR, name), input);
  writeFileSync(join(FINDINGS_DIR, `${name}.txt`), `${note}\n`);
  return name;
}

function saveFinding(target: string, input: Uint8Array, error: Error): string {
  return saveInput(target, input, `${error.name}: ${error.message}\n${error.stack ?? ''}`);
}

async function fuzz(target: FuzzTarget, opts: Options): Promise<Report> {
  const rng = new Rng(opts.seed);
  const parents = [...(await target.seeds()), ...corpusFiles(target.name)];
  const seen = new Set<string>();
  const kinds = new Map<string, number>();
  let findings = 0;
  let saved = 0;
  const record = (input: Uint8Array, result: string | Error): void => {
    if (typeof result === 'string') {
      if (!seen.has(result) && seen.size < MAX_OUTCOMES) {
        seen.add(result);
        if (parents.length < MAX_PARENTS) parents.push(input);
      }
      return;
    }
    findings++;
    const kind = `${result.name}: ${result.message.replace(/[0-9]+/g, '#').slice(0, 120)}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    if (saved < MAX_SAVED_FINDINGS) {
      saved++;
      console.error(
        `  finding in ${target.name}: ${kind} → test/fuzz/findings/${saveFinding(target.name, input, result)}`,
      );
    }
  };
  for (const p of parents.slice()) record(p, await runOne(target, p));

  const rssStart = rss();
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  let lastProgress = started;
  let executions = 0;
  let slow = 0;
  let rssWarm = 0;
  const warmAt = Math.max(1, Math.floor(opts.runs / 10));
  while (executions < opts.runs) {
    if (executions === warmAt) rssWarm = rss();
    const parent = parents[rng.below(parents.length)]!;
    const input = mutate(parent, rng, parents, target.dictionary, target.maxLength);
    const before = performance.now();
    const result = await runOne(target, input);
    const now = performance.now();
    record(input, result);
    executions++;
    if (result instanceof HangError) break; // later inputs would queue behind the stuck one
    if (now - before > SLOW_MS) {
      slow++;
      if (slow <= MAX_SAVED_FINDINGS) {
        const name = saveInput(
          `slow-${target.name}`,
          input,
          `${Math.round(now - before)} ms: ${String(result)}`,
        );
        console.error(
          `  slow input in ${target.name}: ${Math.round(now - before)} ms → test/fuzz/findings/${name}`,
        );
      }
    }
    if (now > deadline) break;
    if (now - lastProgress > 15_000) {
      lastProgress = now;
      const rate = Math.round(executions / ((now - started) / 1000));
      console.error(
        `  ${target.name}: ${executions} executions (${rate}/s), ${findings} findings, ${slow} slow, rss ${mib(process.memoryUsage().rss)} MiB`,
      );
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const rssEnd = rss();
  return {
    target: target.name,
    executions,
    findings,
    kinds,
    outcomes: seen.size,
    rssStart,
    rssWarm,
    rssEnd,
    seconds,
    slow,
  };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const all = [...decoderTargets(), pipelineTarget()];
  const chosen = opts.targets ? all.filter((t) => opts.targets!.includes(t.name)) : all;
  if (opts.targets && chosen.length !== opts.targets.length) {
    throw new Error(`unknown target; known: ${all.map((t) => t.name).join(', ')}`);
  }
  console.log(
    `fuzz seed ${opts.seed}, ${opts.runs} runs per target${Number.isFinite(opts.seconds) ? ` or ${opts.seconds} s` : ''}`,
  );
  const reports: Report[] = [];
  for (const target of chosen) {
    try {
      const r = await fuzz(target, opts);
      reports.push(r);
      const kinds = [...r.kinds].map(([k, n]) => `\n    ${n} × ${k}`).join('');
      console.log(
        `${r.target}: ${r.executions} executions in ${r.seconds.toFixed(1)} s ` +
          `(${Math.round(r.executions / r.seconds)}/s), ${r.findings} findings (unexpected exception types), ` +
          `${r.outcomes} distinct outcomes, ${r.slow} inputs over ${SLOW_MS} ms, RSS ${mib(r.rssStart)} MiB at start, ` +
          `${r.rssWarm ? mib(r.rssWarm) : 'n/a'} after 10% of --runs, ${mib(r.rssEnd)} at end${kinds}`,
      );
    } finally {
      await target.close?.();
    }
  }
  const total = reports.reduce((n, r) => n + r.findings, 0);
  if (total > 0) {
    console.log(`${total} findings; inputs in test/fuzz/findings/`);
    process.exitCode = 1;
  }
}

await main();
