/**
 * A bench's measured side (a bot) in a child process, so that its CPU is its own, and the JSON
 * lines both ends speak. The child prints `{"ready":true,…}` once serving, answers `{"cmd":"cpu"}`
 * with `{"cpu":{user,system},…}` (µs since it was ready) and exits on `{"cmd":"stop"}` or when its
 * stdin closes; whatever else it prints goes to the parent's `onMessage`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RelayClient } from '../framework/relay/index.js';
import { note } from './harness.js';

type Message = Record<string, unknown>;

interface CpuMicros {
  user: number;
  system: number;
}

export interface ChildCpu {
  /** User + system µs since the child was ready. */
  readonly micros: number;
  /** The system (kernel) part of `micros`: socket reads and writes, mostly. */
  readonly systemMicros: number;
  /** Postgres statements, for a child that counts them; else 0. */
  readonly queries: number;
  /** The same statements by kind (bench/bot-statements.ts), for a child that counts them; else {}. */
  readonly queryKinds: Readonly<Record<string, number>>;
  /** The client's work counters (RelayClient.work), for a child that reports them; else {}. */
  readonly work: Readonly<Record<string, number>>;
}

export interface ChildOptions {
  /** Node flags before the script, e.g. --cpu-prof. */
  readonly nodeFlags?: readonly string[];
  /** The child's lines other than the ready line and CPU answers. */
  readonly onMessage?: (msg: Message) => void;
}

// ---- the parent's end ---------------------------------------------------------------------------

export class BenchChild {
  private readonly cpuWaiters: Array<(msg: Message) => void> = [];
  private readonly exited: Promise<number | null>;
  private stderr = '';

  private constructor(private readonly proc: ChildProcess) {
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  }

  /** Runs bench/`script` with `args`; resolves once it is serving, with its ready line. */
  static async start(
    script: string,
    args: readonly string[],
    options: ChildOptions = {},
  ): Promise<{ child: BenchChild; ready: Message }> {
    const file = fileURLToPath(new URL(`./${script}`, import.meta.url));
    const proc = spawn(process.execPath, [...(options.nodeFlags ?? []), '--import', 'tsx', file, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    const child = new BenchChild(proc);
    const ready = new Promise<Message>((resolve) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        let msg: Message;
        try {
          msg = JSON.parse(line) as Message;
        } catch {
          return; // a stray log line
        }
        if (msg.ready) resolve(msg);
        else if (msg.cpu) child.cpuWaiters.shift()?.(msg);
        else options.onMessage?.(msg);
      });
    });
    return {
      child,
      ready: await Promise.race([
        ready,
        child.exited.then((code) => {
          throw new Error(`bot child exited (${code}) before it was ready: ${child.stderr.trim()}`);
        }),
      ]),
    };
  }

  async cpu(): Promise<ChildCpu> {
    const reply = new Promise<Message>((r) => this.cpuWaiters.push(r));
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'cpu' })}\n`);
    const r = await reply;
    const cpu = r.cpu as CpuMicros;
    const work = (r.work ?? {}) as Record<string, number>;
    const queryKinds = (r.queryKinds ?? {}) as Record<string, number>;
    const queries = Number(r.queries ?? 0);
    return { micros: cpu.user + cpu.system, systemMicros: cpu.system, queries, queryKinds, work };
  }

  /** Sends `signal` to the child (bench/replicas-child.ts profiles a window between two SIGUSR2s). */
  signal(signal: NodeJS.Signals): void {
    this.proc.kill(signal);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) this.proc.stdin!.end(`${JSON.stringify({ cmd: 'stop' })}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 15_000)));
    // Cleared, or the pending timer would keep the bench process alive for 15 s after the run.
    const code = await Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
    if (code === 'timeout') this.proc.kill('SIGKILL');
    if (this.stderr.trim()) note(this.stderr.trim());
  }
}

// ---- the child's end ----------------------------------------------------------------------------

export const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

/** Runs the child's `main` on its arguments; a failure goes to stderr, which the parent prints. */
export function runChild(main: (argv: readonly string[]) => Promise<void>): void {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`bot child failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}

/**
 * Counts the client's errors; the returned function writes them, with its dropped inputs, to stderr
 * at stop, so a figure bought by failing is not taken at face value.
 */
export function troubleReport(client: RelayClient): () => void {
  let errors = 0;
  client.on('error', () => errors++);
  return () => {
    if (errors > 0 || client.drops.total() > 0)
      process.stderr.write(
        `bot child: ${errors} errors, ${client.drops.total()} inputs dropped ` +
          `${JSON.stringify(Object.fromEntries(Object.entries(client.drops.snapshot()).filter(([, n]) => n > 0)))}\n`,
      );
  };
}

/**
 * Answers the parent from now on (call it once ready, so the CPU counts from there): `cpu` with the
 * CPU used since plus `counters()`, `stop` (or stdin closing) by running `stop` and exiting, which
 * is when --cpu-prof writes its profile.
 */
export function serveParent(stop: () => Promise<void>, counters: () => object = () => ({})): void {
  const start = process.cpuUsage();
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (stopping ??= stop().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`bot child: stop failed: ${String(e)}\n`);
        process.exit(1);
      },
    ));
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const { cmd } = JSON.parse(line) as { cmd?: string };
    if (cmd === 'cpu') say({ cpu: process.cpuUsage(start), ...counters() });
    else if (cmd === 'stop') void shutdown();
  });
  lines.on('close', () => void shutdown());
}
