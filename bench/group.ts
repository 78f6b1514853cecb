/**
 * N-way groups (PROTOCOL.md §9), `npm run bench -- group`, in parts (`BENCH_GROUP_PARTS=commit,…`):
 *
 * - commit: commit create/process times by group size on the pure engine (bench/group-commit.ts);
 * - receive: what one receiving member spends per application message, and the bytes it writes,
 *   at 10, 100 and 250 members (bench/group-receive.ts);
 * - fanout: fan-out latency through a real broker for groups of 10, 50 and 100 RelayClients, all
 *   in this process (bench/group-fanout.ts);
 * - spread: fan-out to the last of 100 members spread over child processes
 *   (bench/group-fanout-spread.ts, the members in bench/group-members-child.ts);
 * - bot: commands per second a bot sustains answering in a group of 100 (real members, most of them
 *   offline, the broker's fan-out to them real), its CPU per command against the same closed loop
 *   over 1:1 sessions and the pure engine (bench/group-bot.ts, the bot in bench/group-bot-child.ts).
 *
 * Each part prints its own baseline measured in the same run. The broker parts use a private
 * Mosquitto with `set_tcp_nodelay true` (the shared one on :1883 keeps Nagle on at the broker and
 * adds ~40 ms per hop), or the embedded broker when Mosquitto is not installed.
 */
import { pickBroker } from './broker.js';
import { note } from './harness.js';
import { run as runBot } from './group-bot.js';
import { run as runCommit } from './group-commit.js';
import { run as runFanout } from './group-fanout.js';
import { run as runSpread } from './group-fanout-spread.js';
import { run as runReceive } from './group-receive.js';

const PARTS = ['commit', 'receive', 'fanout', 'spread', 'bot'] as const;
type Part = (typeof PARTS)[number];

function selectedParts(): Part[] {
  const env = process.env.BENCH_GROUP_PARTS;
  if (!env) return [...PARTS];
  const wanted = env.split(',').map((s) => s.trim());
  const unknown = wanted.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (unknown.length > 0)
    throw new Error(`BENCH_GROUP_PARTS: unknown ${unknown.join(', ')}; known: ${PARTS}`);
  return PARTS.filter((p) => wanted.includes(p));
}

export async function run(): Promise<void> {
  const parts = selectedParts();
  if (parts.includes('commit')) await runCommit();
  if (parts.includes('receive')) await runReceive();
  if (!parts.some((p) => p === 'fanout' || p === 'spread' || p === 'bot')) return;
  const broker = await pickBroker();
  console.log();
  note(`broker: ${broker.kind} at ${broker.url}`);
  try {
    if (parts.includes('fanout')) await runFanout(broker.url);
    if (parts.includes('spread')) await runSpread(broker.url);
    if (parts.includes('bot')) await runBot(broker.url);
  } finally {
    await broker.close();
  }
}
