/**
 * The inherent cost of one group reply, the same-run floor of bench/group-bot.ts: on the pure engine
 * (node provider), what a bot does per command in a group of `size` beyond the framework: the
 * command's clear header decoded and the message processed (sender data, signature, ratchet), the
 * echo encrypted (ratchet, signature, sender data), the new state encoded against the one it was
 * made from (mls.encodeGroupSession with its basis, as the bot writes it once per command) and the
 * consumed keys wiped. No broker, no store, no handler, no events.
 */
import { randomBytes } from 'node:crypto';
import {
  commitGroup,
  createGroup,
  createMlsContext,
  decodeMessage,
  encodeGroupSession,
  encryptApplication,
  generateKeyPackage,
  joinFromWelcome,
  processGroupMessage,
  wipeConsumed,
  type GeneratedKeyPackage,
  type StoredGroupState,
} from '../framework/relay/mls/index.js';
import { cpuMeter } from './cpu.js';
import { identity } from './identity.js';

const now = (): number => Math.floor(Date.now() / 1000);
const WARMUP = 50;

/** CPU ms per reply over `replies` commands from one sender, after WARMUP; the group is `size`. */
export async function engineReplyMs(size: number, replies: number): Promise<number> {
  const ctx = await createMlsContext({ provider: 'node' });
  const created = await createGroup(ctx, identity(), { now: now() });
  const packages: GeneratedKeyPackage[] = [];
  for (let i = 1; i < size; i++) packages.push(await generateKeyPackage(ctx, identity(), now()));
  const commit = await commitGroup(ctx, created.state, { adds: packages.map((p) => p.keyPackage) });
  const join = async (i: number) =>
    (
      await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [packages[i]!], {
        members: { min: 2, max: size },
      })
    ).state;
  let sender = await join(0);
  let bot = await join(packages.length - 1);
  let stored: StoredGroupState = encodeGroupSession(bot);
  const commands: Uint8Array[] = [];
  for (let i = 0; i < WARMUP + replies; i++) {
    const sent = await encryptApplication(ctx, sender, new Uint8Array(randomBytes(200)));
    sender = sent.state;
    commands.push(sent.message);
  }
  const echo = new Uint8Array(randomBytes(200));
  let meter = cpuMeter();
  for (const [i, command] of commands.entries()) {
    if (i === WARMUP) meter = cpuMeter();
    const got = await processGroupMessage(ctx, bot, decodeMessage(command));
    const reply = await encryptApplication(ctx, got.state, echo);
    const encoded = encodeGroupSession(reply.state, { session: bot, stored });
    wipeConsumed(got.consumed);
    wipeConsumed(reply.consumed);
    bot = reply.state;
    stored = encoded;
  }
  return meter().selfMs / replies;
}
