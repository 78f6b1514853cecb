/**
 * How many commands per second a bot sustains answering in a 100-member group (issue #12). The bot
 * (a RelayClient with a transactional handler answering "/echo x" with "echo: x",
 * bench/group-bot-child.ts) runs in a child process; SENDERS members (RelayClients on
 * MemoryRelayStore) in this process each run LOOPS closed loops, each loop sending "/echo …" to the
 * group and waiting for the echo answering it (replyTo) before sending the next.
 *
 * The other GROUP_SIZE − 1 − SENDERS members are real: RelayClients in child processes
 * (bench/group-members-child.ts) that join the group, so its tree has GROUP_SIZE leaves, and then
 * stop. Decrypting every command and echo in their place would make them, not the bot, what limits
 * the figure (the 11-member version of this bench spent 9–12 ms of its members' CPU per command).
 * The broker's fan-out to them stays real: as many plain MQTT subscribers on the group topic
 * (bench/group-bot-listeners-child.ts) count their deliveries without decrypting.
 *
 * Printed for each store: commands/s, the bot's CPU per command (the child's process.cpuUsage) and
 * its single-core ceiling (1000 / CPU per command), the senders' process CPU per command, the
 * Postgres statements per command, the listeners' deliveries per command, and the same-run
 * baselines: the same loops over 1:1 sessions with the same bot, and the pure-engine cost of one
 * reply in a group of GROUP_SIZE (bench/group-bot-engine.ts), the floor the bot's CPU compares to. The bot runs on MemoryRelayStore,
 * and on a TypeOrmRelayStore in a throwaway Postgres schema when Postgres answers.
 *
 * BENCH_GROUP_BOT_SIZE, _SENDERS, _LOOPS, _SECONDS, _STORES change the shape (SIZE=11 SENDERS=10 LOOPS=1 is
 * the old 11-member bench, minus its decrypting members); BENCH_GROUP_BOT_CPU_PROF=<dir> runs the
 * bot child with --cpu-prof (sum the profiles with bench/bot-profile.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  groupTopic,
  type ReceivedMessage,
  type RelayClient,
  type TopicId,
} from '../framework/relay/index.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { withTimeout } from './raw-peers.js';
import { BenchChild, type ChildCpu } from './child.js';
import { engineReplyMs } from './group-bot-engine.js';
import { benchClient } from './clients.js';
import { cpuMeter } from './cpu.js';
import { closedLoop, heading, note, percentile, report, until } from './harness.js';

const GROUP_SIZE = Number(process.env.BENCH_GROUP_BOT_SIZE ?? 100);
/**
 * One sender by default: a sender decrypts every other sender's command and every echo (2·SENDERS − 1
 * receives and one send per command in this process), so from two senders on this process spends
 * more per command than the bot and becomes what limits the figure on two cores.
 */
const SENDERS = Number(process.env.BENCH_GROUP_BOT_SENDERS ?? 1);
const LOOPS = Number(process.env.BENCH_GROUP_BOT_LOOPS ?? 8);
const SECONDS = Number(process.env.BENCH_GROUP_BOT_SECONDS ?? 6);
const CPU_PROF_DIR = process.env.BENCH_GROUP_BOT_CPU_PROF;
/** `BENCH_GROUP_BOT_STORES=memory` (or `postgres`) runs that store only. */
const STORES = (process.env.BENCH_GROUP_BOT_STORES ?? 'memory,postgres').split(',');
/** `BENCH_GROUP_BOT_DIRECT=0` skips the 1:1 baseline, e.g. so that a profile is the group's alone. */
const DIRECT = process.env.BENCH_GROUP_BOT_DIRECT !== '0';
const QUIET = Math.max(0, GROUP_SIZE - 1 - SENDERS);
/** Child processes the quiet members join from, so their joins are not all on one event loop. */
const MEMBER_CHILDREN = 2;
const WARMUP_SECONDS = 1;
const JOIN_TIMEOUT_MS = 300_000;
/** PROTOCOL.md §9: a commit carries at most 10 Adds. */
const ADD_BATCH = 10;

const clientOptions = {
  powBits: 8,
  welcomeQuota: { perSenderPerMinute: 20, totalPerMinute: 1000 },
  groups: { commitDelayMs: 20 },
};

// ---- the bot child ------------------------------------------------------------------------------

/** The bot in its child process, and the groups it reported joining. */
interface Bot {
  readonly child: BenchChild;
  readonly userId: string;
  readonly joined: Set<string>;
}

async function startBot(args: readonly string[]): Promise<Bot> {
  const joined = new Set<string>();
  const { child, ready } = await BenchChild.start('group-bot-child.ts', args, {
    nodeFlags: CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [],
    onMessage: (msg) => {
      if (typeof msg.joined === 'string') joined.add(msg.joined);
    },
  });
  return { child, userId: String(ready.userId), joined };
}

// ---- senders ------------------------------------------------------------------------------------

/** A member that matches each echo to the command it answers (replyTo = the command's id). */
class Sender {
  private readonly waiters = new Map<string, { expect: string; done: (e?: Error) => void }>();
  readonly joined = new Set<string>();

  constructor(readonly client: RelayClient) {
    client.on('message', (m: ReceivedMessage) => {
      const w = m.content.replyTo === undefined ? undefined : this.waiters.get(m.content.replyTo);
      if (!w) return;
      this.waiters.delete(m.content.replyTo!);
      w.done(m.content.content === w.expect ? undefined : new Error(`unexpected echo ${m.content.content}`));
    });
    client.on('group', (e) => {
      if (e.kind === 'joined') this.joined.add(e.groupId);
    });
  }

  /** Sends "/echo …" (1:1 to `botId`, or to the group) and waits for its echo. */
  async command(to: { botId: string } | { groupId: string }): Promise<void> {
    const id = randomUUID();
    const word = randomBytes(6).toString('hex');
    const got = new Promise<void>((resolve, reject) =>
      this.waiters.set(id, { expect: `echo: ${word}`, done: (e) => (e ? reject(e) : resolve()) }),
    );
    const message = { content: `/echo ${word}`, id };
    if ('botId' in to) await this.client.send(to.botId, message);
    else await this.client.sendToGroup(to.groupId, message);
    await withTimeout(got, `echo of ${message.content}`);
  }
}

async function startSenders(url: string, prefix: string): Promise<Sender[]> {
  return Promise.all(
    Array.from({ length: SENDERS }, async () => {
      const c = await benchClient(url, prefix, clientOptions);
      await c.start();
      return new Sender(c);
    }),
  );
}

// ---- the group of GROUP_SIZE --------------------------------------------------------------------

/** The quiet members in their child processes, and how many joined each group. */
interface Quiet {
  readonly children: BenchChild[];
  readonly userIds: string[];
  readonly joined: Map<string, number>;
}

async function startQuiet(url: string, prefix: string): Promise<Quiet> {
  const joined = new Map<string, number>();
  const per = Math.ceil(QUIET / MEMBER_CHILDREN);
  const counts = Array.from({ length: MEMBER_CHILDREN }, (_, i) =>
    Math.max(0, Math.min(per, QUIET - i * per)),
  );
  const started = await Promise.all(
    counts
      .filter((n) => n > 0)
      .map((n) =>
        BenchChild.start('group-members-child.ts', [url, prefix, String(n)], {
          onMessage: (msg) => {
            if (typeof msg.joined === 'string') joined.set(msg.joined, (joined.get(msg.joined) ?? 0) + 1);
          },
        }),
      ),
  );
  return {
    children: started.map((s) => s.child),
    userIds: started.flatMap((s) => s.ready.userIds as string[]),
    joined,
  };
}

/**
 * Creates the group: the bot and the other senders first, then the quiet members ADD_BATCH at a
 * time, each batch added once the previous one joined (a joiner subscribes after its Welcome, so a
 * commit published before that is one it never sees, PROTOCOL.md §9 "Delivery"). Then the quiet
 * members stop. Returns the group's id and topic, and the seconds it took.
 */
async function buildGroup(
  url: string,
  prefix: string,
  bot: Bot,
  senders: Sender[],
): Promise<{ groupId: string; topic: string; seconds: number }> {
  const t0 = performance.now();
  const quiet = await startQuiet(url, prefix);
  try {
    const [creator, ...others] = senders as [Sender, ...Sender[]];
    const invitees = [...quiet.userIds];
    const first = [bot.userId, ...others.map((s) => s.client.userId)];
    const info = await creator.client.createGroup(
      [...first, ...invitees.splice(0, Math.max(0, ADD_BATCH - first.length))],
      { name: 'busy' },
    );
    for (;;) {
      const want = QUIET - invitees.length;
      await until(
        () =>
          bot.joined.has(info.groupId) &&
          others.every((s) => s.joined.has(info.groupId)) &&
          (quiet.joined.get(info.groupId) ?? 0) >= want,
        JOIN_TIMEOUT_MS,
        `the bot, the senders and ${want} quiet members to join`,
      );
      if (invitees.length === 0) break;
      await creator.client.addToGroup(info.groupId, invitees.splice(0, ADD_BATCH));
    }
    return {
      groupId: info.groupId,
      topic: groupTopic(prefix, info.topicId as TopicId),
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await Promise.all(quiet.children.map((c) => c.stop()));
  }
}

// ---- measuring ----------------------------------------------------------------------------------

interface Window {
  commands: number;
  perSecond: number;
  p50: number;
  p99: number;
  botCpuMs: number;
  sendersCpuMs: number;
  queries: number;
  work: Record<string, number>;
  deliveries: number;
  machineBusy: number;
}

const loops = SENDERS * LOOPS;

async function window(
  bot: BenchChild,
  once: (i: number) => Promise<void>,
  listeners?: BenchChild,
): Promise<Window> {
  await closedLoop(loops, WARMUP_SECONDS, once);
  const read = (): Promise<[ChildCpu, ChildCpu | undefined]> => Promise.all([bot.cpu(), listeners?.cpu()]);
  const [botBefore, heardBefore] = await read();
  const meter = cpuMeter();
  const { latencies, completed } = await closedLoop(loops, SECONDS, once);
  const self = meter();
  const [botAfter, heardAfter] = await read();
  latencies.sort((a, b) => a - b);
  const n = Math.max(completed, 1);
  const work: Record<string, number> = {};
  for (const [k, v] of Object.entries(botAfter.work)) work[k] = (v - (botBefore.work[k] ?? 0)) / n;
  return {
    commands: completed,
    perSecond: latencies.length / SECONDS,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    botCpuMs: (botAfter.micros - botBefore.micros) / 1000 / n,
    sendersCpuMs: self.selfMs / n,
    queries: (botAfter.queries - botBefore.queries) / n,
    work,
    deliveries: ((heardAfter?.work.deliveries ?? 0) - (heardBefore?.work.deliveries ?? 0)) / n,
    machineBusy: self.machineBusy,
  };
}

/** The same-run pure-engine cost of one reply in a group of GROUP_SIZE (bench/group-bot-engine.ts). */
let engineMs = Number.NaN;

function print(label: string, w: Window, baseline?: { name: string; value: number }): void {
  report(`${label}: commands/s`, w.perSecond, 'cmd/s', baseline);
  report(`${label}: command → echo p50 / p99`, w.p50, `/ ${w.p99.toFixed(1)} ms`);
  report(`${label}: bot CPU per command`, w.botCpuMs, `ms, ceiling ${(1000 / w.botCpuMs).toFixed(0)} cmd/s`, {
    name: 'engine',
    value: engineMs,
  });
  const core = (ms: number): string => `${((ms * w.perSecond) / 10).toFixed(0)} % of a core`;
  const counters = Object.entries(w.work)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
  note(
    `${w.commands} commands; CPU per command: bot ${w.botCpuMs.toFixed(2)} ms (${core(w.botCpuMs)}), ` +
      `senders' process ${w.sendersCpuMs.toFixed(2)} ms (${core(w.sendersCpuMs)}); machine ` +
      `${w.machineBusy.toFixed(0)} % busy (2 cores = 100 %)`,
  );
  note(
    `per command: ${w.queries.toFixed(2)} Postgres statements` +
      (w.deliveries > 0 ? `, ${w.deliveries.toFixed(1)} deliveries to the quiet members` : '') +
      (counters ? `; bot work: ${counters}` : ''),
  );
}

async function oneStore(url: string, senders: Sender[], prefix: string, store: string[]): Promise<void> {
  const bot = await startBot([url, prefix, ...store]);
  try {
    const botId = bot.userId;
    // First contact (bundle fetch, Welcome, join) before anything is timed.
    await Promise.all(senders.map((s) => s.command({ botId })));
    const direct = DIRECT
      ? await window(bot.child, (i) => senders[i % SENDERS]!.command({ botId }))
      : undefined;
    if (direct) print(`1:1 baseline`, direct);

    const group = await buildGroup(url, prefix, bot, senders);
    note(
      `group of ${GROUP_SIZE} built (${QUIET} quiet members joined, then stopped) in ${group.seconds.toFixed(1)} s`,
    );
    const { child: listeners } = await BenchChild.start('group-bot-listeners-child.ts', [
      url,
      group.topic,
      String(QUIET),
    ]);
    try {
      const w = await window(
        bot.child,
        (i) => senders[i % SENDERS]!.command({ groupId: group.groupId }),
        listeners,
      );
      print(`group of ${GROUP_SIZE}`, w, direct && { name: '1:1', value: direct.perSecond });
    } finally {
      await listeners.stop();
    }
  } finally {
    await bot.child.stop();
  }
}

export async function run(url: string): Promise<void> {
  heading(
    `a bot answering in a group of ${GROUP_SIZE}: closed-loop "/echo" commands, against the same loops over 1:1`,
  );
  engineMs = await engineReplyMs(GROUP_SIZE, 400);
  report(`baseline: one reply in a group of ${GROUP_SIZE}, pure engine + state encode`, engineMs, 'ms CPU');
  const prefix = `bench-gbot-${randomBytes(4).toString('hex')}`;
  const senders = await startSenders(url, prefix);
  note(
    `${SENDERS} senders × ${LOOPS} loops (RelayClient, MemoryRelayStore) in this process; bot in a child ` +
      `process; ${QUIET} quiet members (joined, then offline; as many raw QoS 1 subscribers count the ` +
      `fan-out); ${SECONDS} s windows after ${WARMUP_SECONDS} s warm-up`,
  );
  try {
    if (STORES.includes('memory')) {
      heading('bot store MemoryRelayStore');
      await oneStore(url, senders, prefix, ['memory']);
    }
    if (!STORES.includes('postgres')) return;
    if (!(await postgresAnswers())) {
      note(`Postgres at ${new URL(PG_URL).host} does not answer: the TypeOrmRelayStore run is skipped`);
      return;
    }
    const schema = `relay_bench_gbot_${randomBytes(6).toString('hex')}`;
    await createPgSchema(schema);
    try {
      heading('bot store TypeOrmRelayStore (Postgres, fresh schema)');
      await oneStore(url, senders, prefix, ['postgres', PG_URL, schema]);
    } finally {
      await dropPgSchema(schema);
    }
  } finally {
    await Promise.all(senders.map((s) => s.client.stop().catch(() => undefined)));
  }
}
