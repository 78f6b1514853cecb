/**
 * How many commands per second a bot sustains in one busy group. The bot (a RelayClient with a
 * transactional handler answering "/echo x" with "echo: x", bench/group-bot-child.ts) runs in a
 * child process; MEMBERS RelayClients (MemoryRelayStore) in this process each send "/echo …" to the
 * group and wait for the echo answering it (replyTo) before sending the next: a closed loop.
 *
 * Baseline in the same run: the same closed loop over 1:1 sessions, each member sending its
 * command to the bot with send() and the bot replying to it alone. In the group every command and
 * every echo goes to all members, so the members' process decrypts about 2·MEMBERS messages per
 * command instead of one: the CPU per command printed with each line says which process limited it.
 *
 * Run with the bot on MemoryRelayStore, and on a TypeOrmRelayStore in a throwaway Postgres schema
 * when Postgres answers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { RelayClient, ReceivedMessage } from '../framework/relay/index.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { withTimeout } from './raw-peers.js';
import { BenchChild } from './child.js';
import { benchClient } from './clients.js';
import { cpuMeter } from './cpu.js';
import { closedLoop, heading, note, percentile, report, until } from './harness.js';

const MEMBERS = Number(process.env.BENCH_GROUP_BOT_MEMBERS ?? 10);
const SECONDS = Number(process.env.BENCH_GROUP_BOT_SECONDS ?? 6);
const WARMUP_SECONDS = 1;
const JOIN_TIMEOUT_MS = 60_000;

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
    onMessage: (msg) => {
      if (typeof msg.joined === 'string') joined.add(msg.joined);
    },
  });
  return { child, userId: String(ready.userId), joined };
}

// ---- members ------------------------------------------------------------------------------------

/** A member that matches each echo to the command it answers (replyTo = the command's id). */
class Member {
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

async function startMembers(url: string, prefix: string): Promise<Member[]> {
  return Promise.all(
    Array.from({ length: MEMBERS }, async () => {
      const c = await benchClient(url, prefix, { powBits: 8, groups: { commitDelayMs: 20 } });
      await c.start();
      return new Member(c);
    }),
  );
}

// ---- measuring ----------------------------------------------------------------------------------

interface Window {
  perSecond: number;
  p50: number;
  p99: number;
  botCpuMs: number;
  membersCpuMs: number;
  machineBusy: number;
}

async function window(bot: BenchChild, once: (i: number) => Promise<void>): Promise<Window> {
  await closedLoop(MEMBERS, WARMUP_SECONDS, once);
  const botBefore = await bot.cpu();
  const meter = cpuMeter();
  const { latencies } = await closedLoop(MEMBERS, SECONDS, once);
  const self = meter();
  const botUsed = (await bot.cpu()).micros - botBefore.micros;
  latencies.sort((a, b) => a - b);
  const n = Math.max(latencies.length, 1);
  return {
    perSecond: latencies.length / SECONDS,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    botCpuMs: botUsed / 1000 / n,
    membersCpuMs: self.selfMs / n,
    machineBusy: self.machineBusy,
  };
}

function print(label: string, w: Window, baseline?: { name: string; value: number }): void {
  report(`${label}: commands/s`, w.perSecond, 'cmd/s', baseline);
  report(`${label}: command → echo p50 / p99`, w.p50, `/ ${w.p99.toFixed(1)} ms`);
  const core = (ms: number): string => `${((ms * w.perSecond) / 10).toFixed(0)} % of a core`;
  note(
    `CPU per command: bot ${w.botCpuMs.toFixed(2)} ms (${core(w.botCpuMs)}), members' process ` +
      `${w.membersCpuMs.toFixed(2)} ms (${core(w.membersCpuMs)}); machine ${w.machineBusy.toFixed(0)} % ` +
      `busy (2 cores = 100 %)`,
  );
}

async function oneStore(url: string, members: Member[], prefix: string, store: string[]): Promise<void> {
  const bot = await startBot([url, prefix, ...store]);
  try {
    const botId = bot.userId;
    // First contact (bundle fetch, Welcome, join) before anything is timed.
    await Promise.all(members.map((m) => m.command({ botId })));
    const direct = await window(bot.child, (i) => members[i]!.command({ botId }));
    print(`1:1 baseline, ${MEMBERS} members`, direct);

    const creator = members[0]!;
    const info = await creator.client.createGroup([botId, ...members.slice(1).map((m) => m.client.userId)], {
      name: 'busy',
    });
    await until(
      () => bot.joined.has(info.groupId) && members.slice(1).every((m) => m.joined.has(info.groupId)),
      JOIN_TIMEOUT_MS,
      'the bot and members to join the group',
    );
    const group = await window(bot.child, (i) => members[i]!.command({ groupId: info.groupId }));
    print(`group of ${MEMBERS + 1} (bot + ${MEMBERS})`, group, {
      name: '1:1',
      value: direct.perSecond,
    });
  } finally {
    await bot.child.stop();
  }
}

export async function run(url: string): Promise<void> {
  heading('a bot in one busy group: closed-loop "/echo" commands, against the same loop over 1:1 sessions');
  const prefix = `bench-gbot-${randomBytes(4).toString('hex')}`;
  const members = await startMembers(url, prefix);
  note(
    `${MEMBERS} members (RelayClient, MemoryRelayStore) in this process, closed loop; bot in a child ` +
      `process; ${SECONDS} s windows after ${WARMUP_SECONDS} s warm-up`,
  );
  try {
    heading('bot in one busy group: bot store MemoryRelayStore');
    await oneStore(url, members, prefix, ['memory']);

    if (!(await postgresAnswers())) {
      note(`Postgres at ${new URL(PG_URL).host} does not answer: the TypeOrmRelayStore run is skipped`);
      return;
    }
    const schema = `relay_bench_gbot_${randomBytes(6).toString('hex')}`;
    await createPgSchema(schema);
    try {
      heading('bot in one busy group: bot store TypeOrmRelayStore (Postgres, fresh schema)');
      await oneStore(url, members, prefix, ['postgres', PG_URL, schema]);
    } finally {
      await dropPgSchema(schema);
    }
  } finally {
    await Promise.all(members.map((m) => m.client.stop().catch(() => undefined)));
  }
}
