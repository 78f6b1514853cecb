/**
 * One receiving member's CPU per group application message END TO END, through the real
 * RelayClient: MQTT transport, the topic lane, envelope checks, the store's load and commit, the
 * MLS step and the 'message' event the app sees. The receiver (bench/group-receive-child.ts) runs
 * in its own process, on MemoryRelayStore and then on TypeOrmRelayStore (Postgres, fresh schema);
 * the sender (the group's creator) and the N-2 other members are RelayClients in this process.
 * The other members only publish their bundles and stop: they never join, so their decryptions do
 * not load the machine while the receiver is measured (MLS does not need them online).
 *
 * Per group size: WARMUP messages, then WINDOWS windows of MESSAGES messages each; the receiver's
 * process CPU (user + system, process.cpuUsage in the child) over each window divided by its
 * messages. Printed: the median and the spread of the windows, the Postgres statements per
 * message, and the pure-engine figure of bench/group-receive.ts for the same size measured in this
 * run (decode, MLS processing, state encode; no broker, no store), so the difference is the shell.
 *
 * `BENCH_GROUP_RECEIVE_E2E_PROF=<prefix>` makes the child write a V8 CPU profile of the messages
 * after the warm-up to <prefix>-<store>-<pid>.cpuprofile (sum it with bench/bot-profile.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createMlsContext } from '../framework/relay/mls/index.js';
import type { RelayClient } from '../framework/relay/index.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { BenchChild } from './child.js';
import { benchClient, inBatches } from './clients.js';
import { measureEngine } from './group-receive.js';
import { heading, note, numbersFromEnv, percentile, report, until } from './harness.js';

/** `BENCH_GROUP_RECEIVE_E2E_N=10` measures that size only. */
const SIZES = numbersFromEnv('BENCH_GROUP_RECEIVE_E2E_N', [10, 100]);
/** `BENCH_GROUP_RECEIVE_E2E_STORES=memory` skips Postgres. */
const STORES = (process.env.BENCH_GROUP_RECEIVE_E2E_STORES ?? 'memory,postgres').split(',');
/**
 * Messages before the first window, a multiple of the child's report step (25). Enough for V8 to
 * have optimised the hot path: with 50, the windows still paid for TurboFan compiling it (--log-
 * function-events showed ~300 hot functions compiled during the first ~1,000 messages, and perf
 * put a fifth of the receiver's CPU in V8's compiler threads), which is not a per-message cost.
 */
const WARMUP = Number(process.env.BENCH_GROUP_RECEIVE_E2E_WARMUP ?? 1000);
const MESSAGES = Number(process.env.BENCH_GROUP_RECEIVE_E2E_MESSAGES ?? 150);
const WINDOWS = Number(process.env.BENCH_GROUP_RECEIVE_E2E_WINDOWS ?? 3);
const TEXT = 'x'.repeat(120);
const JOIN_TIMEOUT_MS = 180_000;
const DRAIN_TIMEOUT_MS = 120_000;
/** `BENCH_GROUP_RECEIVE_E2E_NODE_FLAGS="--log-deopt --logfile=/tmp/v8-%p.log"`: node flags of the receiver. */
const NODE_FLAGS = process.env.BENCH_GROUP_RECEIVE_E2E_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];

interface Receiver {
  child: BenchChild;
  userId: string;
  joined: Set<string>;
  got: () => number;
}

async function startReceiver(args: readonly string[]): Promise<Receiver> {
  const joined = new Set<string>();
  let got = 0;
  const { child, ready } = await BenchChild.start('group-receive-child.ts', args, {
    nodeFlags: NODE_FLAGS,
    onMessage: (msg) => {
      if (typeof msg.joined === 'string') joined.add(msg.joined);
      if (typeof msg.got === 'number') got = msg.got;
    },
  });
  return { child, userId: String(ready.userId), joined, got: () => got };
}

interface Group {
  id: string;
  size: number;
}

/** A group of `size`: the sender, the receiver, size-2 of the silent members. */
async function makeGroup(sender: RelayClient, receiver: Receiver, silent: readonly string[], size: number) {
  const info = await sender.createGroup([receiver.userId, ...silent.slice(0, size - 2)], {
    name: `receive ${size}`,
  });
  await until(() => receiver.joined.has(info.groupId), JOIN_TIMEOUT_MS, `the receiver to join (N = ${size})`);
  return { id: info.groupId, size };
}

interface Figures {
  perMessage: number[];
  /** The kernel's share of perMessage, summed over the windows. */
  systemMs: number;
  /** The client's work counters that moved, per message (state cache hits and misses above all). */
  work: Record<string, number>;
  statements: number;
}

async function measureGroup(sender: RelayClient, receiver: Receiver, group: Group): Promise<Figures> {
  let sent = receiver.got();
  const send = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) await sender.sendToGroup(group.id, { content: TEXT, id: randomUUID() });
    sent += count;
    await until(() => receiver.got() >= sent, DRAIN_TIMEOUT_MS, `the receiver to have ${sent} messages`);
  };
  await send(WARMUP);
  const perMessage: number[] = [];
  let statements = 0;
  let systemMs = 0;
  const work: Record<string, number> = {};
  for (let w = 0; w < WINDOWS; w++) {
    const before = await receiver.child.cpu();
    await send(MESSAGES);
    const after = await receiver.child.cpu();
    perMessage.push((after.micros - before.micros) / 1000 / MESSAGES);
    statements += (after.queries - before.queries) / MESSAGES;
    systemMs += (after.systemMicros - before.systemMicros) / 1000 / MESSAGES;
    for (const [k, v] of Object.entries(after.work)) {
      const moved = (v - (before.work[k] ?? 0)) / MESSAGES / WINDOWS;
      if (moved > 0) work[k] = (work[k] ?? 0) + moved;
    }
  }
  return { perMessage, systemMs: systemMs / WINDOWS, work, statements: statements / WINDOWS };
}

async function oneStore(
  url: string,
  prefix: string,
  sender: RelayClient,
  silent: readonly string[],
  store: readonly string[],
  engine: ReadonlyMap<number, number>,
): Promise<void> {
  const receiver = await startReceiver([url, prefix, ...store]);
  try {
    for (const size of SIZES) {
      const group = await makeGroup(sender, receiver, silent, size);
      const f = await measureGroup(sender, receiver, group);
      const sorted = [...f.perMessage].sort((a, b) => a - b);
      const median = percentile(sorted, 0.5);
      heading(
        `N = ${size}, receiver on ${store[0]}: ${WINDOWS} windows of ${MESSAGES} messages after ${WARMUP}`,
      );
      report('receiver CPU per message, end to end (median)', median, 'ms', {
        name: 'pure engine',
        value: engine.get(size) ?? 0,
      });
      note(
        `windows in run order ${f.perMessage.map((x) => x.toFixed(3)).join(' / ')} ms; pure engine ` +
          `${(engine.get(size) ?? 0).toFixed(3)} ms; kernel (system CPU) ${f.systemMs.toFixed(3)} ms of it` +
          (f.statements > 0 ? `; ${f.statements.toFixed(2)} Postgres statements per message` : ''),
      );
      const work = Object.entries(f.work).map(([k, v]) => `${k} ${v.toFixed(2)}`);
      if (work.length > 0) note(`work counters per message: ${work.join(', ')}`);
    }
  } finally {
    await receiver.child.stop();
  }
}

export async function run(url: string): Promise<void> {
  heading('a receiving member per group application message, end to end (RelayClient in its own process)');
  const ctx = await createMlsContext({ provider: 'node' });
  const engine = new Map<number, number>();
  for (const size of SIZES) engine.set(size, (await measureEngine(ctx, size)).cpuMs);
  const prefix = `bench-grecv-${randomBytes(4).toString('hex')}`;
  const sender = await benchClient(url, prefix, { powBits: 8, groups: { commitDelayMs: 20 } });
  await sender.start();
  // The other members: their bundles are on the broker once start() returned; then they go.
  const silent = await inBatches(Math.max(...SIZES) - 2, 10, async () => {
    const c = await benchClient(url, prefix, { powBits: 8 });
    await c.start();
    await c.stop();
    return c.userId;
  });
  note(
    `sender and ${silent.length} silent members (stopped after publishing their bundles) in this ` +
      `process; one sender, ${TEXT.length}-character texts`,
  );
  try {
    if (STORES.includes('memory')) await oneStore(url, prefix, sender, silent, ['memory'], engine);
    if (!STORES.includes('postgres')) return;
    if (!(await postgresAnswers())) {
      note(`Postgres at ${new URL(PG_URL).host} does not answer: the TypeOrmRelayStore run is skipped`);
      return;
    }
    const schema = `relay_bench_grecv_${randomBytes(6).toString('hex')}`;
    await createPgSchema(schema);
    try {
      await oneStore(url, prefix, sender, silent, ['postgres', PG_URL, schema], engine);
    } finally {
      await dropPgSchema(schema);
    }
  } finally {
    await sender.stop().catch(() => undefined);
  }
}
