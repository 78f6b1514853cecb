/**
 * An agent under SIGKILL (issue #14, "What it must show"): a bot process that streams replies
 * (ctx.stream), sends typing indicators (ctx.typing() and automatic typing) and answers slowly is
 * killed at random points and started again on the same Postgres schema, CYCLES times, while a 1:1
 * peer and a group member keep sending it commands (a second member only listens).
 *
 * Asserted, for every receiver: no decryption failure and nothing refused (drop counters `mls`,
 * `hpke`, `content*`, group faults stay 0); no ratchet generation used twice: a wire tap names the
 * (conversation, sender leaf, epoch, generation) of every message the bot published and finds no
 * two different messages under one; every stream well formed and ended: parts in seq order once,
 * exactly one final text (the whole reply, a failure note, or INTERRUPTED_REPLY), nothing after it;
 * every command answered.
 *
 * RELAY_CHAOS_SEED replays a run (printed first); RELAY_AGENT_CRASH_CYCLES (default 4) makes it
 * longer: `npm run chaos -- --agents --cycles 30`.
 */
import { INTERRUPTED_REPLY, STREAM_FAILED_NOTE } from '../../framework/bot/index.js';
import { DEFAULT_ERROR_REPLY } from '../../framework/bot/middleware/recover.js';
import type { DropReason, ReceivedMessage } from '../../framework/relay/index.js';
import { answersTo, streamFaults, streamsSeen } from '../support/agent-replies.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { kill, startChild, type Child } from '../support/child.js';
import { GenerationTap } from '../support/generation-tap.js';
import { GroupWorld, until, type Member } from '../support/groups.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresForTests } from '../support/postgres.js';
import { chaosSeed, seededRandom } from '../support/seeded-random.js';

const rawCycles = process.env.RELAY_AGENT_CRASH_CYCLES;
const CYCLES = rawCycles === undefined || rawCycles === '' ? 4 : Number(rawCycles);
if (!Number.isSafeInteger(CYCLES) || CYCLES < 1)
  throw new Error(`RELAY_AGENT_CRASH_CYCLES must be a whole number of at least 1, got ${rawCycles}`);

/** Drops that would mean a receiver saw a broken message from the bot. */
const MUST_STAY_ZERO: DropReason[] = [
  'mls',
  'hpke',
  'inner_payload',
  'sender_binding',
  'unknown_session',
  'content',
  'content_sender',
  'content_unknown_target',
  'group_payload',
  'group_epoch_gap',
  'group_fork',
  'unknown_group',
];

interface Command {
  id: string;
  kind: 'direct' | 'group';
  text: string;
}

const full = (n: number): string => Array.from({ length: n }, (_, i) => `s${i} `).join('');

/** The answers a command may end with; anything else is wrong. */
function acceptable(text: string): string[] {
  const [name, a] = text.slice(1).split(' ');
  const n = Number(a);
  switch (name) {
    case 'stream':
      return [full(n), INTERRUPTED_REPLY, `${full(n)}\n\n${STREAM_FAILED_NOTE}`];
    case 'fail':
      return [`${full(n)}\n\n${STREAM_FAILED_NOTE}`, INTERRUPTED_REPLY];
    default:
      return [`slept ${a}`, INTERRUPTED_REPLY];
  }
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

const pgUp = await postgresForTests('the agent crash test');

(pgUp ? test : test.skip)(
  `an agent streaming and typing, ${CYCLES} SIGKILL cycles: no failed decryption, no reused generation, no open stream`,
  async () => {
    const rnd = seededRandom(chaosSeed());
    process.stdout.write(`RELAY_CHAOS_SEED=${rnd.seed} (agent crash, cycles ${CYCLES})\n`);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const schema = uniqueName('agentcrash').replace(/-/g, '_');
    await createPgSchema(schema);
    const world = new GroupWorld(broker.url);
    const childEnv = {
      DATABASE_URL: PG_URL,
      RELAY_PG_SCHEMA: schema,
      RELAY_BROKER_URL: broker.url,
      RELAY_PREFIX: world.prefix,
    };
    let child: Child | undefined;
    let tap: GenerationTap | undefined;
    const commands: Command[] = [];
    try {
      child = await startChild('agent-crash-child.ts', childEnv);
      const botId = child.userId;
      tap = await GenerationTap.start(broker.url, world.prefix, botId);
      const peer = await world.start();
      const [owner, listener] = [await world.start(), await world.start()];
      await tap.tapInbox({ userId: peer.client.userId, store: peer.store });
      const fromBot = (m: Member, kind: 'direct' | 'group'): ReceivedMessage[] =>
        m.messages.filter((x) => x.from === botId && x.conversation.kind === kind);

      // First contact, then the group (owner commits; the bot and the listener join).
      const first = await peer.client.send(botId, '/slow 1');
      await until(() => answersTo(fromBot(peer, 'direct'), first.id).length > 0, 60_000, 'first contact');
      const groupId = (await owner.client.createGroup([botId, listener.client.userId])).groupId;
      await tap.tapGroup(groupId, listener.store);
      await until(() => listener.events.some((e) => e.kind === 'joined'), 60_000, 'the listener joining');
      // The bot subscribes once it stored the Welcome; probe until it answers in the group.
      const probes: string[] = [];
      let probedAt = 0;
      await until(
        async () => {
          if (probes.some((id) => answersTo(fromBot(owner, 'group'), id).length > 0)) return true;
          if (Date.now() - probedAt > 2000) {
            probedAt = Date.now();
            probes.push((await owner.client.sendToGroup(groupId, '/slow 1')).id);
          }
          return false;
        },
        60_000,
        'the bot answering in the group',
      );

      // Load: each conversation sends a random command, waits for its answer up to 1..4 s (as a
      // person does, who may also give up waiting), then pauses 200..800 ms; until told to stop.
      let sending = true;
      const randomCommand = (): string => {
        const r = rnd.next();
        if (r < 0.55) return `/stream ${rnd.int(2, 8)} ${rnd.int(50, 150)}`;
        if (r < 0.7) return `/fail ${rnd.int(1, 4)} ${rnd.int(50, 150)}`;
        return `/slow ${rnd.int(100, 1200)}`;
      };
      const load = async (kind: 'direct' | 'group'): Promise<void> => {
        const sender = kind === 'direct' ? peer : owner;
        while (sending) {
          const text = randomCommand();
          const { id } =
            kind === 'direct'
              ? await peer.client.send(botId, text)
              : await owner.client.sendToGroup(groupId, text);
          commands.push({ id, kind, text });
          await until(() => answersTo(fromBot(sender, kind), id).length > 0, rnd.int(1000, 4000)).catch(
            () => undefined,
          );
          await sleep(rnd.int(200, 800));
        }
      };
      const loads = [load('direct'), load('group')];

      for (let cycle = 0; cycle < CYCLES; cycle++) {
        await sleep(rnd.int(400, 3000));
        await kill(child);
        // Commands keep coming while it is down; the broker queues them for its session.
        await sleep(rnd.int(0, 1200));
        child = await startChild('agent-crash-child.ts', childEnv);
        expect(child.userId).toBe(botId);
      }
      await sleep(rnd.int(500, 2000));
      sending = false;
      await Promise.all(loads);

      const receivers: Array<{ name: string; member: Member; kind: 'direct' | 'group' }> = [
        { name: 'peer', member: peer, kind: 'direct' },
        { name: 'owner', member: owner, kind: 'group' },
        { name: 'listener', member: listener, kind: 'group' },
      ];
      const settled = (): boolean =>
        commands.every((c) =>
          receivers
            .filter((r) => r.kind === c.kind)
            .every((r) => answersTo(fromBot(r.member, c.kind), c.id).length > 0),
        ) &&
        receivers.every((r) =>
          [...streamsSeen(fromBot(r.member, r.kind)).values()].every((s) => s.finals.length > 0),
        );
      await until(settled, 90_000, 'every command answered and every stream ended').catch(() => undefined);
      await sleep(1000); // anything sent twice, or after a final, arrives now
      await tap.settle();

      // ---- what happened, printed before the assertions
      const faults: string[] = [];
      const counts = { streams: 0, interrupted: 0, failed: 0, whole: 0, typing: 0 };
      for (const r of receivers) {
        const got = fromBot(r.member, r.kind);
        counts.typing += got.filter((m) => m.content.type === 'typing').length;
        for (const s of streamsSeen(got).values()) {
          counts.streams++;
          faults.push(...streamFaults(s).map((f) => `${r.name}: ${f}`));
        }
        for (const c of commands.filter((x) => x.kind === r.kind)) {
          const answers = answersTo(got, c.id);
          // The error reply follows a handler that failed (/fail, or one stopped at its time limit):
          // a clear failure, besides the final text its stream ended with, if it had one.
          const finals = answers.filter((a) => a !== DEFAULT_ERROR_REPLY);
          const ok = acceptable(c.text);
          if (answers.length === 0) faults.push(`${r.name}: ${c.text} (${c.id}) unanswered`);
          else if (finals.length > 1)
            faults.push(`${r.name}: ${c.text} answered ${finals.length} times: ${JSON.stringify(answers)}`);
          else if (finals.length === 1 && !ok.includes(finals[0]!))
            faults.push(`${r.name}: ${c.text} answered ${JSON.stringify(finals[0])}`);
          for (const a of answers) {
            if (a === INTERRUPTED_REPLY) counts.interrupted++;
            else if (a.endsWith(STREAM_FAILED_NOTE) || a === DEFAULT_ERROR_REPLY) counts.failed++;
            else counts.whole++;
          }
        }
      }
      const drops: Record<string, Record<string, number>> = {};
      for (const r of receivers) {
        const snap = r.member.client.drops.snapshot();
        drops[r.name] = Object.fromEntries(Object.entries(snap).filter(([, n]) => n > 0));
      }
      process.stdout.write(
        [
          `agent crash, seed ${rnd.seed}: ${commands.length} commands over ${CYCLES} kills; ${counts.streams} streams seen,`,
          `  answers: ${counts.whole} whole, ${counts.failed} failed, ${counts.interrupted} interrupted; ${counts.typing} typing messages`,
          `  tap: ${tap.decoded} distinct messages of the bot, ${tap.copies} copies of the same bytes, ${tap.unplaced} unplaced`,
          `  receivers' drops (replay/duplicate are copies of the same bytes): ${JSON.stringify(drops)}`,
          ...faults.map((f) => `  FAULT ${f}`),
          '',
        ].join('\n'),
      );

      expect({ failures: tap.failures, reused: tap.reused(), unplaced: tap.unplaced }).toEqual({
        failures: [],
        reused: [],
        unplaced: 0,
      });
      expect(tap.decoded).toBeGreaterThan(commands.length);
      for (const r of receivers)
        for (const reason of MUST_STAY_ZERO)
          expect({ receiver: r.name, reason, n: r.member.client.drops.get(reason) }).toEqual({
            receiver: r.name,
            reason,
            n: 0,
          });
      expect(faults).toEqual([]);
      expect(counts.streams).toBeGreaterThan(CYCLES);
    } catch (e) {
      process.stderr.write(`agent crash failed; replay with RELAY_CHAOS_SEED=${rnd.seed}\n`);
      throw e;
    } finally {
      if (child) await kill(child);
      await tap?.close();
      await world.close();
      await dropPgSchema(schema).catch(() => undefined);
    }
  },
  180_000 + CYCLES * 20_000,
);
