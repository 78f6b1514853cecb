/**
 * What one receiving member of a busy group spends per application message, by group size, on
 * the pure engine with the state written as a RelayClient writes it: the clear header decoded,
 * the message processed (sender data, signature, ratchet), the new state encoded against the one
 * it was made from (mls.encodeGroupSession with its basis) and the consumed keys wiped. No broker,
 * no store round trip: those do not grow with the group.
 *
 * The group has 4 past epochs retained (PROTOCOL.md §9 accepts messages from them), as a group
 * that has seen a few commits has, and messages come from every other member in turn, so each
 * sender's ratchet moves. Printed: CPU per message (process time over the whole run, so garbage
 * collection counts), the bytes written per message (live part, and the epoch part when it
 * changed), and the same-run baseline: the raw cryptography of one message (AES-128-GCM open of
 * the sender data and the content, Ed25519 verify, two HKDF steps of the ratchet) on node:crypto.
 */
import {
  createCipheriv,
  createDecipheriv,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
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
  type GroupSession,
  type MlsContext,
  type StoredGroupState,
} from '../framework/relay/mls/index.js';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpuMeter } from './cpu.js';
import { heading, note, numbersFromEnv, report } from './harness.js';
import { identity } from './identity.js';

/**
 * `BENCH_GROUP_RECEIVE_PROF=<prefix>` writes a V8 CPU profile of each size's measured messages
 * only (not the group's construction) to <prefix>-<N>.cpuprofile; sum it with bench/bot-profile.ts.
 */
const PROFILE = process.env.BENCH_GROUP_RECEIVE_PROF;
/** `BENCH_GROUP_RECEIVE_N=10,100` measures those sizes only. */
const SIZES = numbersFromEnv('BENCH_GROUP_RECEIVE_N', [10, 100, 250]);
const MESSAGES = Number(process.env.BENCH_GROUP_RECEIVE_MESSAGES ?? 400);
/** Senders that hold a state (the others' leaves exist but never send). */
const SENDERS = 8;
const PAST_EPOCHS = 4;
/** Messages received before the meter starts (JIT, caches). */
const WARMUP = 50;
const FLOOR_REPS = 3000;
const MAX_MEMBERS = 250;

const now = (): number => Math.floor(Date.now() / 1000);

/** The raw cryptography of receiving one message: two AEAD opens, one verify, the ratchet's HKDF. */
function cryptoFloorMs(): number {
  const signer = generateKeyPairSync('ed25519');
  const key = randomBytes(16);
  const nonce = randomBytes(12);
  const seal = (pt: Buffer): { ct: Buffer; tag: Buffer } => {
    const c = createCipheriv('aes-128-gcm', key, nonce);
    const ct = Buffer.concat([c.update(pt), c.final()]);
    return { ct, tag: c.getAuthTag() };
  };
  const senderData = seal(randomBytes(12));
  const content = seal(randomBytes(300));
  const signature = sign(null, content.ct, signer.privateKey);
  const open = (x: { ct: Buffer; tag: Buffer }): Buffer => {
    const d = createDecipheriv('aes-128-gcm', key, nonce);
    d.setAuthTag(x.tag);
    return Buffer.concat([d.update(x.ct), d.final()]);
  };
  const once = (): void => {
    open(senderData);
    open(content);
    if (!verify(null, content.ct, signer.publicKey, signature)) throw new Error('raw verify failed');
    hkdfSync('sha256', key, Buffer.alloc(0), 'key', 16);
    hkdfSync('sha256', key, Buffer.alloc(0), 'nonce', 12);
  };
  for (let i = 0; i < 200; i++) once();
  // CPU time, not wall time: the machine is shared and the receiver's figure is CPU time too.
  const meter = cpuMeter();
  for (let i = 0; i < FLOOR_REPS; i++) once();
  return meter().selfMs / FLOOR_REPS;
}

interface Group {
  receiver: GroupSession;
  senders: GroupSession[];
}

/** A group of `size` in which SENDERS members and the receiver (the last leaf) hold states. */
async function build(ctx: MlsContext, size: number): Promise<Group> {
  const created = await createGroup(ctx, identity(), { now: now() });
  const packages: GeneratedKeyPackage[] = [];
  for (let i = 1; i < size; i++) packages.push(await generateKeyPackage(ctx, identity(), now()));
  let commit = await commitGroup(ctx, created.state, { adds: packages.map((p) => p.keyPackage) });
  const holders = [...packages.slice(0, SENDERS - 1), packages.at(-1)!];
  let states = [commit.state];
  for (const kp of holders) {
    const joined = await joinFromWelcome(ctx, commit.welcome!, commit.ratchetTree, [kp], {
      members: { min: 2, max: MAX_MEMBERS },
    });
    states.push(joined.state);
  }
  // Past epochs: empty commits from the creator, followed by everyone holding a state.
  for (let e = 0; e < PAST_EPOCHS; e++) {
    commit = await commitGroup(ctx, states[0]!, {});
    const followed = [commit.state];
    for (const s of states.slice(1)) followed.push((await processGroupMessage(ctx, s, commit.commit)).state);
    states = followed;
  }
  return { receiver: states.at(-1)!, senders: states.slice(0, -1) };
}

interface EngineFigures {
  /** CPU per message, ms. */
  cpuMs: number;
  /** Bytes written per message. */
  bytes: number;
  counted: number;
  senders: number;
  stored: StoredGroupState;
}

/** One receiving member of a group of `size` on the pure engine: CPU and bytes per message. */
export async function measureEngine(ctx: MlsContext, size: number): Promise<EngineFigures> {
  const group = await build(ctx, size);
  // The messages, encrypted up front so that only receiving is timed.
  const messages: Uint8Array[] = [];
  const senders = [...group.senders];
  for (let i = 0; i < MESSAGES; i++) {
    const k = i % senders.length;
    const sent = await encryptApplication(ctx, senders[k]!, new Uint8Array(randomBytes(200)));
    senders[k] = sent.state;
    messages.push(sent.message);
  }
  let state = group.receiver;
  let stored: StoredGroupState = encodeGroupSession(state);
  let liveBytes = 0;
  let epochBytes = 0;
  const profiler = PROFILE ? new Session() : undefined;
  profiler?.connect();
  let meter = cpuMeter();
  for (const [i, message] of messages.entries()) {
    if (i === WARMUP) {
      await profiler?.post('Profiler.enable');
      await profiler?.post('Profiler.start');
      meter = cpuMeter();
      liveBytes = epochBytes = 0;
    }
    const header = decodeMessage(message);
    const got = await processGroupMessage(ctx, state, header);
    const encoded = encodeGroupSession(got.state, { session: state, stored });
    liveBytes += encoded.live.length;
    if (encoded.epochChanged) epochBytes += encoded.epoch.length;
    wipeConsumed(got.consumed);
    state = got.state;
    stored = encoded;
  }
  const counted = MESSAGES - WARMUP;
  const cpuMs = meter().selfMs / counted;
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(`${PROFILE}-${size}.cpuprofile`, JSON.stringify(profile));
    profiler.disconnect();
  }
  return { cpuMs, bytes: (liveBytes + epochBytes) / counted, counted, senders: senders.length, stored };
}

export async function run(): Promise<void> {
  const ctx = await createMlsContext({ provider: 'node' });
  const floor = cryptoFloorMs();
  heading('a receiving member per application message (pure engine + state encode, node provider)');
  report('baseline: raw crypto of one message (2 AES-GCM opens, Ed25519 verify, 2 HKDF)', floor, 'ms');
  for (const size of SIZES) {
    const e = await measureEngine(ctx, size);
    heading(
      `N = ${size}: ${e.counted} messages (after ${WARMUP}) from ${e.senders} senders, ${PAST_EPOCHS} past epochs`,
    );
    report('receiver CPU per message', e.cpuMs, 'ms', { name: 'raw crypto', value: floor });
    report('bytes written per message', e.bytes, 'B');
    note(
      `epoch part ${e.stored.epoch.length} B (written when the epoch changes), live part ${e.stored.live.length} B`,
    );
  }
}
