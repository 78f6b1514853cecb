/**
 * Hostile load (issue 10, hole 6): what an envelope that cost its sender nothing costs the bot, and
 * what a flood of them does to legitimate traffic.
 *
 * 1. Per-envelope cost of each cheap rejection, through the receive pipeline's envelope checks
 *    (`checkEnvelope`) with a real opener, access index, replay cache and store (Postgres when it
 *    answers, else SQLite). Baseline, same run: one replay-cache read from that store, which every
 *    envelope cost first before the checks were reordered.
 * 2. Through a private Mosquitto with the queue limits of deploy/mosquitto/mosquitto.conf: an echo
 *    bot (RelayClient on SQLite) drains floods of invalid-PoW envelopes at QoS 1 and at QoS 0 while a
 *    peer keeps one legitimate /echo in flight; its latency is compared with a quiet run first. Then
 *    the bot's own pace, not the publisher's: 9,000 envelopes queued while it was offline, drained.
 *    Bot, peer and attacker share this process (and its event loop): the figures are indications.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AccessIndex, accessHint } from '../framework/relay/access.js';
import {
  MemoryRelayStore,
  RelayClient,
  encodeEnvelope,
  generateIdentity,
  inboxTopic,
  powChallenge,
  type DropReason,
  type UnixSeconds,
} from '../framework/relay/index.js';
import { checkEnvelope, type EnvelopeCheckDeps } from '../framework/relay/inbound-envelope.js';
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../framework/relay/labels.js';
import { ReplayCache, replayDigest } from '../framework/relay/replay-cache.js';
import { createOpener } from '../framework/relay/seal.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { RawMqtt, invalidNonce, invalidPowEnvelope, mineFor, nowSeconds } from '../test/support/attacker.js';
import { startPrivateBroker } from '../test/support/broker.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { closedLoop, heading, measureAsync, note, percentile, report, sleep, until } from './harness.js';

const POW_BITS = 18;
const FLOOD = Number(process.env.BENCH_HOSTILE_FLOOD ?? 20_000);
const QUIET_SECONDS = 3;
/** Below the shipped max_queued_messages (10,000), so the broker keeps all of it. */
const BACKLOG = 9000;

/** The queue lines of the Mosquitto config we ship, so the bench measures what operators run. */
function shippedQueueLimits(): string[] {
  const conf = readFileSync(new URL('../deploy/mosquitto/mosquitto.conf', import.meta.url), 'utf8');
  return conf
    .split('\n')
    .filter((l) => /^(max_inflight_messages|max_queued_messages|max_queued_bytes)\s/.test(l));
}

/** The store the baseline reads: Postgres when it answers (the bot), else SQLite in `dir`. */
async function baselineStore(
  dir: string,
): Promise<{ store: TypeOrmRelayStore; kind: string; close(): Promise<void> }> {
  if (await postgresAnswers()) {
    const schema = `bench_hostile_${randomBytes(4).toString('hex')}`;
    await createPgSchema(schema);
    const store = new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
    const close = async (): Promise<void> => {
      await store.close();
      await dropPgSchema(schema);
    };
    return { store, kind: 'Postgres', close };
  }
  const store = new TypeOrmRelayStore(
    await createRelayDataSource({ sqlitePath: path.join(dir, 'cheap.sqlite') }),
  );
  return { store, kind: 'SQLite', close: () => store.close() };
}

async function cheapRejections(store: TypeOrmRelayStore, kind: string): Promise<void> {
  heading(`cheap rejections, per envelope (checkEnvelope, ${POW_BITS}-bit inbox, ${kind} store behind it)`);
  const me = generateIdentity();
  const now = nowSeconds();
  const sessionKey = new Uint8Array(randomBytes(32));
  const accessIndex = new AccessIndex();
  accessIndex.setSession('bench-session', { current: sessionKey });
  const replayCache = new ReplayCache();
  const deps: EnvelopeCheckDeps = {
    selfId: me.userId,
    powBits: POW_BITS,
    maxEnvelopeBytes: DEFAULT_MAX_ENVELOPE_BYTES,
    opener: await createOpener(me.sealSecret),
    accessIndex,
    replayCache,
    hasEnvelope: (d, t) => store.hasEnvelope(d, t),
  };
  const body = (size: number) => ({
    enc: new Uint8Array(randomBytes(32)),
    ciphertext: new Uint8Array(randomBytes(size)),
    sentAt: now,
  });
  const mined = body(240);
  replayCache.record(
    Buffer.from(replayDigest(mined.enc, mined.ciphertext)).toString('hex'),
    (now + 3600) as UnixSeconds,
  );
  const tagged = body(240);
  const hint = accessHint(sessionKey, now);
  const big = body(DEFAULT_MAX_ENVELOPE_BYTES - 200);
  const cases: Array<[string, Uint8Array, DropReason]> = [
    ['garbage (random 300 bytes)', new Uint8Array(randomBytes(300)), 'codec'],
    ['invalid PoW', invalidPowEnvelope(me.userId, POW_BITS), 'pow'],
    [
      'invalid PoW, 256 KiB envelope',
      encodeEnvelope({
        ...big,
        powNonce: invalidNonce(powChallenge(me.userId, now, big.enc, big.ciphertext), POW_BITS),
      }),
      'pow',
    ],
    [
      'bad tag (hint of a live session, wrong tag, no PoW)',
      encodeEnvelope({
        ...tagged,
        powNonce: invalidNonce(powChallenge(me.userId, now, tagged.enc, tagged.ciphertext), POW_BITS),
        access: { hint, tag: new Uint8Array(randomBytes(16)) },
      }),
      'pow',
    ],
    [
      'replay of a mined envelope (in memory)',
      encodeEnvelope({ ...mined, powNonce: mineFor(me.userId, mined, POW_BITS) }),
      'replay',
    ],
  ];
  const storeRead = await measureAsync(
    () => store.hasEnvelope(randomBytes(32).toString('hex'), now).then(() => undefined),
    { seconds: 1, warmup: 50 },
  );
  const baseline = { name: 'one store read', value: storeRead.meanMs * 1000 };
  report(`baseline: one replay-cache read from ${kind}`, baseline.value, 'µs');
  for (const [name, bytes, reason] of cases) {
    const first = await checkEnvelope(deps, bytes, now);
    if (first.ok || first.reason !== reason) throw new Error(`${name}: expected ${reason}`);
    const t = await measureAsync(() => checkEnvelope(deps, bytes, now).then(() => undefined), {
      seconds: 1,
      warmup: 100,
    });
    report(`${name} → ${reason}`, t.meanMs * 1000, 'µs/envelope', baseline);
  }
}

interface Loop {
  latencies: number[];
  completed: number;
}

async function echoLoop(peer: RelayClient, botId: string, seconds: number): Promise<Loop> {
  const waiting = new Map<string, () => void>();
  const onMessage = (m: { content: { replyTo?: string } }): void => {
    const to = m.content.replyTo;
    if (to) waiting.get(to)?.();
  };
  peer.on('message', onMessage);
  try {
    return await closedLoop(1, seconds, async () => {
      let answered!: () => void;
      const replied = new Promise<void>((r) => (answered = r));
      const id = randomBytes(8).toString('hex');
      waiting.set(id, answered);
      await peer.send(botId, { content: '/echo bench', id });
      let timer: NodeJS.Timeout | undefined;
      const lost = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('a legitimate /echo was not answered within 60 s')),
          60_000,
        );
      });
      await Promise.race([replied, lost]).finally(() => clearTimeout(timer));
      waiting.delete(id);
    });
  } finally {
    peer.off('message', onMessage);
  }
}

function reportLoop(name: string, loop: Loop, quiet?: Loop): void {
  const sorted = [...loop.latencies].sort((a, b) => a - b);
  const q = quiet && [...quiet.latencies].sort((a, b) => a - b);
  report(
    `${name}: legitimate p50`,
    percentile(sorted, 0.5),
    'ms',
    q && { name: 'quiet', value: percentile(q, 0.5) },
  );
  report(
    `${name}: legitimate max`,
    sorted[sorted.length - 1] ?? Number.NaN,
    'ms',
    q && { name: 'quiet', value: q[q.length - 1]! },
  );
  report(`${name}: legitimate round trips`, loop.completed, '');
}

async function flood(
  attacker: RawMqtt,
  bot: RelayClient,
  peer: RelayClient,
  inbox: string,
  qos: 0 | 1,
  quiet: Loop,
): Promise<void> {
  const reason: DropReason = qos === 0 ? 'qos' : 'pow';
  const junk = Array.from({ length: FLOOD }, () => invalidPowEnvelope(bot.identity.userId, POW_BITS));
  const before = bot.drops.get(reason);
  const start = performance.now();
  let published = 0;
  let publishedAt = start;
  const publishing = Promise.all(
    junk.map((b) => attacker.publish(inbox, b, { qos }).then(() => published++)),
  ).then(() => (publishedAt = performance.now()));
  let draining = true;
  const drained = until(
    () => bot.drops.get(reason) - before >= FLOOD,
    300_000,
    `${FLOOD} ${reason} drops`,
  ).then(() => {
    draining = false;
    return performance.now();
  });
  // One legitimate /echo in flight for as long as the flood is being drained.
  const legit: Loop = { latencies: [], completed: 0 };
  while (draining) {
    const one = await echoLoop(peer, bot.userId, 0.2);
    legit.latencies.push(...one.latencies);
    legit.completed += one.completed;
  }
  await publishing;
  const drainedAt = await drained;
  const label = `QoS ${qos} flood`;
  heading(`${FLOOD} invalid-PoW envelopes at QoS ${qos}, one legitimate /echo in flight throughout`);
  report(`${label}: attacker published`, (published * 1000) / (publishedAt - start), 'envelopes/s');
  report(`${label}: bot drained`, (FLOOD * 1000) / (drainedAt - start), `envelopes/s (${reason})`);
  reportLoop(label, legit, quiet);
  await sleep(200);
}

async function throughTheBroker(dir: string): Promise<void> {
  const limits = shippedQueueLimits();
  const broker = await startPrivateBroker('mosquitto', { extraConfig: limits }).catch(() => undefined);
  if (!broker) return note('mosquitto is not installed: the flood half is skipped');
  const prefix = `bench-hostile-${randomBytes(4).toString('hex')}`;
  const botStore = new TypeOrmRelayStore(
    await createRelayDataSource({ sqlitePath: path.join(dir, 'bot.sqlite') }),
  );
  const startBot = async (): Promise<RelayClient> => {
    const client = await RelayClient.create({
      store: botStore,
      broker: { url: broker.url },
      topicPrefix: prefix,
      powBits: POW_BITS,
    });
    client.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
    await client.start();
    return client;
  };
  const peer = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
  });
  const attacker = await RawMqtt.connect(broker.url);
  let bot: RelayClient | undefined;
  try {
    bot = await startBot();
    await peer.start();
    heading(`private Mosquitto with the shipped limits: ${limits.join(', ')}; bot on SQLite`);
    await echoLoop(peer, bot.userId, 0.5); // first contact and warm-up
    const quiet = await echoLoop(peer, bot.userId, QUIET_SECONDS);
    reportLoop('quiet', quiet);
    const inbox = inboxTopic(prefix, bot.identity.userId);
    await flood(attacker, bot, peer, inbox, 1, quiet);
    await flood(attacker, bot, peer, inbox, 0, quiet);
    // The bot's own pace, not the publisher's: a backlog queued while it was away, drained on return.
    const selfId = bot.identity.userId;
    await bot.stop();
    bot = undefined;
    const junk = Array.from({ length: BACKLOG }, () => invalidPowEnvelope(selfId, POW_BITS));
    await Promise.all(junk.map((b) => attacker.publish(inbox, b)));
    const start = performance.now();
    bot = await startBot();
    const back = bot;
    await until(() => back.drops.get('pow') >= BACKLOG, 300_000, `${BACKLOG} queued envelopes drained`);
    heading(`${BACKLOG} invalid-PoW envelopes queued at QoS 1 while the bot was offline`);
    report('backlog drained (from start())', (BACKLOG * 1000) / (performance.now() - start), 'envelopes/s');
  } finally {
    await attacker.close();
    await peer.stop();
    await bot?.stop();
    await botStore.close();
    await broker.close();
  }
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-bench-hostile-'));
  try {
    const baseline = await baselineStore(dir);
    try {
      await cheapRejections(baseline.store, baseline.kind);
    } finally {
      await baseline.close();
    }
    await throughTheBroker(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
