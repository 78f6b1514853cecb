/**
 * A fixed 1:1 workload for measuring the framework's own cost per command, independent of what else
 * the machine runs: the echo bot (RelayClient + MemoryRelayStore + BotRuntime(EchoBot), so no
 * database) in a child process, N peers (MemoryRelayStore) in this one, a private broker, and K
 * `/ping` commands sent ONE AT A TIME, round robin over the peers. One at a time so the bot does the
 * same work whatever the machine's load: nothing overlaps, no batch is larger on a slow run.
 *
 *   npx tsx bench/direct-path.ts [--peers 10] [--warmup 300] [--commands 200]
 *                                [--callgrind <out-file>] [--cpu-prof <dir>] [--broker embedded]
 *                                [--store postgres]
 *   npx tsx bench/direct-path.ts count <callgrind-out-file> <commands>
 *   npx tsx bench/direct-path.ts diff <file-a> <commands-a> <file-b> <commands-b>
 *
 * Prints the bot child's CPU per command (process.cpuUsage: still load-dependent) and, with
 * --callgrind, runs the child under `valgrind --tool=callgrind --instr-atstart=no`, switches
 * instrumentation on (callgrind_control -i on) only for the K counted commands after the warm-up,
 * and prints the instructions per command: the same count whatever else the machine does.
 * callgrind sees V8's generated code only as addresses; for JS names profile the same workload with
 * --cpu-prof and sum it with bench/bot-profile.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { BotRuntime } from '../framework/bot/index.js';
import { MemoryRelayStore, type RelayStore } from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { createPgSchema, dropPgSchema, PG_URL } from '../test/support/postgres.js';
import { EchoBot } from '../bots/echo/index.js';
import { startPrivateBroker, type BrokerKind } from '../test/support/broker.js';
import { createPeers, type Peer } from './bot.js';
import { benchClient } from './clients.js';
import { runChild, say, serveParent, troubleReport } from './child.js';

const run = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ---- the child: the bot -------------------------------------------------------------------------

/** The bot's store: MemoryRelayStore, or with a schema name TypeOrmRelayStore on Postgres. */
async function botStore(schema: string | undefined): Promise<RelayStore & { close?(): Promise<void> }> {
  if (!schema) return new MemoryRelayStore();
  return new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
}

async function serveBot(url: string, prefix: string, schema?: string): Promise<void> {
  const store = await botStore(schema);
  const client = await benchClient(url, prefix, {
    store,
    powBits: 8,
    welcomeQuota: { perSenderPerMinute: 5, totalPerMinute: 100_000 },
  });
  const reportTrouble = troubleReport(client);
  const runtime = new BotRuntime(new EchoBot());
  runtime.attach(client, { store });
  await client.start();
  say({ ready: true, userId: client.userId });
  serveParent(async () => {
    await runtime.stop();
    await client.stop();
    await runtime.detach();
    await store.close?.();
    reportTrouble();
  });
}

// ---- the parent: peers and the count ------------------------------------------------------------

interface Options {
  readonly peers: number;
  readonly warmup: number;
  readonly commands: number;
  readonly callgrind?: string;
  readonly cpuProf?: string;
  readonly broker: BrokerKind;
  /** 'postgres': the bot on TypeOrmRelayStore in a fresh schema (the database's own work is not counted). */
  readonly store: 'memory' | 'postgres';
  /** A file for `strace -c -f` of the bot (syscalls from its start: use a short warm-up, large K). */
  readonly strace?: string;
  /** More flags for the bot's node, e.g. --node-flags="--trace-deopt" (with --child-out to see what it prints). */
  readonly nodeFlags: readonly string[];
  /** A file the bot's stdout is copied to. */
  readonly childOut?: string;
}

function options(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      peers: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '300' },
      commands: { type: 'string', default: '200' },
      callgrind: { type: 'string' },
      'cpu-prof': { type: 'string' },
      broker: { type: 'string', default: 'mosquitto' },
      store: { type: 'string', default: 'memory' },
      strace: { type: 'string' },
      'node-flags': { type: 'string', default: '' },
      'child-out': { type: 'string' },
    },
  });
  return {
    peers: Number(values.peers),
    warmup: Number(values.warmup),
    commands: Number(values.commands),
    callgrind: values.callgrind,
    cpuProf: values['cpu-prof'],
    broker: values.broker === 'embedded' ? 'embedded' : 'mosquitto',
    store: values.store === 'postgres' ? 'postgres' : 'memory',
    strace: values.strace,
    nodeFlags: values['node-flags'].split(' ').filter((f) => f !== ''),
    childOut: values['child-out'],
  };
}

/** The bot child, under callgrind when asked; its JSON lines as in bench/child.ts. */
class BotChild {
  private readonly waiters: Array<(m: Record<string, unknown>) => void> = [];
  private stderr = '';
  readonly ready: Promise<Record<string, unknown>>;
  private readonly exited: Promise<number | null>;

  constructor(
    private readonly proc: ChildProcess,
    readonly pid: number,
  ) {
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
    const ready = new Promise<Record<string, unknown>>((resolve) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (!line.startsWith('{')) return;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (msg.ready) resolve(msg);
        else if (msg.cpu) this.waiters.shift()?.(msg);
      });
    });
    this.ready = Promise.race([
      ready,
      this.exited.then((code) => {
        throw new Error(`bot child exited (${code}): ${this.stderr.trim()}`);
      }),
    ]);
  }

  static start(url: string, prefix: string, o: Options, schema?: string): BotChild {
    const node = [
      process.execPath,
      ...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`] : []),
      ...o.nodeFlags,
      '--import',
      'tsx',
      SELF,
      'bot',
      url,
      prefix,
      ...(schema ? [schema] : []),
    ];
    // instr-atstart=no: start-up, first contact and the warm-up run uninstrumented (and faster).
    const argv = o.callgrind
      ? ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${o.callgrind}`, ...node]
      : o.strace
        ? ['strace', '-c', '-f', '-o', o.strace, ...node]
        : node;
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
    if (o.childOut) proc.stdout!.pipe(createWriteStream(o.childOut));
    return new BotChild(proc, proc.pid!);
  }

  /** User + system µs since ready. */
  async cpuMicros(): Promise<number> {
    const reply = new Promise<Record<string, unknown>>((r) => this.waiters.push(r));
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'cpu' })}\n`);
    const cpu = (await reply).cpu as { user: number; system: number };
    return cpu.user + cpu.system;
  }

  async stop(): Promise<string> {
    if (this.proc.exitCode === null) this.proc.stdin!.end(`${JSON.stringify({ cmd: 'stop' })}\n`);
    await this.exited;
    return this.stderr;
  }
}

/**
 * What V8 does beside running the program, told apart by function name (the part before its
 * arguments): compiling (tier-up goes on for thousands of commands, one function at a time) and
 * garbage collection (a major GC falls in a window or not, so it varies run to run by ~10 %).
 * `program` is the rest: what a change to the framework's code moves, repeatable to ~1 %.
 */
const COMPILE = /compiler::|turboshaft|maglev|baseline::|Compil|Pipeline|Zone/;
const GC =
  /Mark|Sweep|Scaveng|Evacuat|Compact|GC|RememberedSet|SlotSet|MemoryChunk|ActiveSystemPages|Heap::|SizeFromMap|GetHeaderSize|popcount|RelocIterator|Worklist|IterateObjectCache|RecordWrite|Visitor|BodyDescriptor|FreeList|Cleaner|LiveObject|Migrat|VisitRoot|Weak|Finaliz/;

interface Count {
  readonly total: number;
  readonly compile: number;
  readonly gc: number;
  readonly program: number;
}

/** Self instructions per function (its full name), from callgrind_annotate. */
async function selfCosts(file: string): Promise<Map<string, number>> {
  const { stdout } = await run('callgrind_annotate', ['--threshold=100', '--auto=no', file], {
    maxBuffer: 256 * 1024 * 1024,
  });
  const out = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*([\d,]+) \([ \d.]+%\)\s+(.*) \[[^\]]*\]$/.exec(line);
    // V8's generated code has no symbols and moves between runs: one entry for all of it.
    const fn = m && (/^\?\?\?:0x[0-9a-f]+/.test(m[2]!) ? '(generated code)' : m[2]!);
    if (m && fn) out.set(fn, (out.get(fn) ?? 0) + Number(m[1]!.replace(/,/g, '')));
  }
  return out;
}

const kindOf = (fn: string): 'compile' | 'gc' | 'program' => {
  const name = fn.replace(/\(anonymous namespace\)/g, '').split('(')[0]!;
  return COMPILE.test(name) ? 'compile' : GC.test(name) ? 'gc' : 'program';
};

/** callgrind's totals by kind. */
async function callgrindCount(file: string): Promise<Count> {
  const sums = { compile: 0, gc: 0, program: 0 };
  for (const [fn, n] of await selfCosts(file)) sums[kindOf(fn)] += n;
  return { total: sums.compile + sums.gc + sums.program, ...sums };
}

/** The program functions whose instructions per command changed most from run a to run b. */
async function diffRuns(a: string, ka: number, b: string, kb: number, top = 25): Promise<void> {
  const [before, after] = await Promise.all([selfCosts(a), selfCosts(b)]);
  const rows = [...new Set([...before.keys(), ...after.keys()])]
    .filter((fn) => kindOf(fn) === 'program')
    .map((fn) => ({ fn, d: (after.get(fn) ?? 0) / kb - (before.get(fn) ?? 0) / ka }))
    .sort((x, y) => Math.abs(y.d) - Math.abs(x.d))
    .slice(0, top);
  for (const r of rows) console.log(`${r.d > 0 ? '+' : ''}${Math.round(r.d)}\t${r.fn.slice(0, 140)}`);
}

async function sequential(peers: readonly Peer[], count: number, offset = 0): Promise<void> {
  for (let i = 0; i < count; i++) await peers[(offset + i) % peers.length]!.command('/ping');
}

async function measure(o: Options): Promise<void> {
  const broker = await startPrivateBroker(o.broker);
  const prefix = `bench-direct-${randomBytes(4).toString('hex')}`;
  const schema = o.store === 'postgres' ? `relay_bench_direct_${randomBytes(6).toString('hex')}` : undefined;
  if (schema) await createPgSchema(schema);
  const child = BotChild.start(broker.url, prefix, o, schema);
  let peers: Peer[] = [];
  try {
    const ready = await child.ready;
    peers = await createPeers(broker.url, prefix, String(ready.userId), o.peers);
    // First contact, one peer at a time, then the warm-up: V8 has compiled the hot path by then.
    await sequential(peers, peers.length);
    await sequential(peers, o.warmup);
    if (o.callgrind) await run('callgrind_control', ['-i', 'on', String(child.pid)]);
    const cpu0 = await child.cpuMicros();
    await sequential(peers, o.commands);
    const cpu1 = await child.cpuMicros();
    if (o.callgrind) await run('callgrind_control', ['-i', 'off', String(child.pid)]);
    const line: Record<string, unknown> = {
      peers: o.peers,
      warmup: o.warmup,
      commands: o.commands,
      cpuMsPerCommand: Number(((cpu1 - cpu0) / 1000 / o.commands).toFixed(4)),
    };
    await Promise.all(peers.map((p) => p.client.stop().catch(() => undefined)));
    peers = [];
    const stderr = await child.stop();
    if (o.callgrind) {
      const count = await callgrindCount(o.callgrind);
      const per = (n: number): number => Math.round(n / o.commands);
      line.instructions = count.total;
      line.perCommand = {
        total: per(count.total),
        program: per(count.program),
        compile: per(count.compile),
        gc: per(count.gc),
      };
    }
    console.log(JSON.stringify(line));
    const trouble = stderr.split('\n').filter((l) => l.startsWith('bot child'));
    if (trouble.length > 0) console.error(trouble.join('\n'));
  } finally {
    await Promise.all(peers.map((p) => p.client.stop().catch(() => undefined)));
    await child.stop();
    await broker.close();
    if (schema) await dropPgSchema(schema);
  }
}

if (process.argv[2] === 'bot') {
  runChild(([, url, prefix, schema]) => serveBot(url!, prefix!, schema));
} else if (process.argv[2] === 'count') {
  // Re-reads a callgrind file written earlier: `count <file> <commands>`.
  const [, , , file, commands] = process.argv;
  void callgrindCount(file!).then((c) => {
    const per = (n: number): number => Math.round(n / Number(commands));
    console.log(
      JSON.stringify({
        total: per(c.total),
        program: per(c.program),
        compile: per(c.compile),
        gc: per(c.gc),
      }),
    );
  });
} else if (process.argv[2] === 'diff') {
  // Where two runs differ: `diff <file-a> <commands-a> <file-b> <commands-b>`.
  const [, , , a, ka, b, kb] = process.argv;
  void diffRuns(a!, Number(ka), b!, Number(kb));
} else {
  measure(options(process.argv.slice(2))).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
