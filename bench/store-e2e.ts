/**
 * Store benchmark part 2 (see bench/store.ts): sustained echo round trips through a real broker with
 * the bot on each store, against the same pattern on the raw MQTT transport in the same run.
 */
import { performance } from 'node:perf_hooks';
import {
  MqttTransport,
  RelayClient,
  type ReceivedMessage,
  type RelayStore,
} from '../framework/relay/index.js';
import { createRawPeers, withTimeout } from './raw-peers.js';
import { pickBroker } from './broker.js';
import { benchClient, inBatches } from './clients.js';
import { closedLoop, heading, note, percentile, report } from './harness.js';
import { hex, openStore, type StoreKind } from './store-open.js';

const RAW_PAYLOAD_BYTES = 600;
const RAW_SECONDS = 3;
const E2E_SECONDS = 5;
const SESSION_COUNTS = [1, 10, 100] as const;
const PEER_BATCH = 10;
/** Something like a short chat line; the envelope around it is what the broker carries. */
const MESSAGE_TEXT = 'x'.repeat(120);

interface RoundTrips {
  /** Round trips that finished inside the window. */
  readonly count: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** Process CPU (user + system) per round trip, ms; bot, peers and MQTT client all included. */
  readonly cpuMs: number;
  /** Every round trip completed, the ones finishing after the window included. */
  readonly completed: number;
}

/** Runs `n` loops of back-to-back round trips for `seconds`; in-flight trips are awaited, not counted. */
async function driveLoops(
  n: number,
  seconds: number,
  once: (i: number) => Promise<void>,
): Promise<RoundTrips> {
  const cpuBefore = process.cpuUsage();
  const { latencies, completed } = await closedLoop(n, seconds, once);
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    cpuMs: (cpu.user + cpu.system) / 1000 / Math.max(completed, 1),
    completed,
  };
}

/** The ceiling: the same N-pair request/reply through the same broker on plain MqttTransport. */
async function rawCeiling(url: string, n: number, seconds: number): Promise<RoundTrips> {
  const base = `bench-raw-${hex(4)}`;
  const echo = new MqttTransport({ url, clientId: `${base}-echo`, sessionExpirySeconds: 0 });
  echo.onMessage(async (m) => {
    // Like the bot: the reply is published without awaiting its PUBACK, then the request is acked.
    const i = m.topic.slice(m.topic.lastIndexOf('/') + 1);
    void echo.publish(`${base}/peer/${i}`, m.payload, { qos: 1 }).catch(() => undefined);
  });
  const raw = createRawPeers(url, base, n, RAW_PAYLOAD_BYTES);
  const { peers, once } = raw;
  try {
    await Promise.all([echo, ...peers].map((t) => t.connect()));
    await echo.subscribe(`${base}/bot/+`, { qos: 1 });
    await Promise.all(peers.map((p, i) => p.subscribe(`${base}/peer/${i}`, { qos: 1 })));
    await Promise.all(peers.map((_, i) => once(i)));
    return await driveLoops(n, seconds, once);
  } finally {
    await Promise.all([echo, ...peers].map((t) => t.end().catch(() => undefined)));
  }
}

type CallStats = Map<string, { calls: number; ms: number }>;

/** The store with the wall time of every call summed per method (concurrent calls overlap). */
function timedStore(store: RelayStore, stats: CallStats): RelayStore {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        const start = performance.now();
        try {
          return await fn.apply(target, args);
        } finally {
          const s = stats.get(prop) ?? { calls: 0, ms: 0 };
          s.calls++;
          s.ms += performance.now() - start;
          stats.set(prop, s);
        }
      };
    },
  });
}

function storeBreakdown(stats: CallStats, trips: number): string {
  const rows = [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((sum, [, s]) => sum + s.ms, 0);
  const parts = rows
    .filter(([, s]) => s.ms / trips >= 0.01)
    .map(([name, s]) => `${name} ${(s.ms / trips).toFixed(2)}`);
  return `bot store wall ms per round trip: ${(total / trips).toFixed(2)} = ${parts.join(', ')}`;
}

function replyFrom(peer: RelayClient, from: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: ReceivedMessage): void => {
      if (m.from !== from) return;
      peer.off('message', on);
      resolve();
    };
    peer.on('message', on);
  });
}

async function roundTrip(peer: RelayClient, bot: RelayClient, text: string): Promise<void> {
  const got = replyFrom(peer, bot.userId);
  await peer.send(bot.userId, text);
  await withTimeout(got, 'relay echo');
}

function createPeers(url: string, prefix: string, count: number): Promise<RelayClient[]> {
  return inBatches(count, PEER_BATCH, async () => {
    const c = await benchClient(url, prefix);
    await c.start();
    return c;
  });
}

export interface EndToEndOptions {
  kinds: readonly StoreKind[];
  sessions?: readonly number[];
  seconds?: number;
  rawSeconds?: number;
}

export async function endToEnd(opts: EndToEndOptions): Promise<void> {
  const sessions = opts.sessions ?? SESSION_COUNTS;
  const seconds = opts.seconds ?? E2E_SECONDS;
  const maxPeers = Math.max(...sessions);
  const broker = await pickBroker();
  note(`broker: ${broker.kind} at ${broker.url}`);
  const peers: RelayClient[] = [];
  try {
    heading(
      `raw transport ceiling: N pairs of QoS 1 request/reply, ${RAW_PAYLOAD_BYTES} B, ${opts.rawSeconds ?? RAW_SECONDS} s`,
    );
    const raw = new Map<number, RoundTrips>();
    for (const n of sessions) {
      const r = await rawCeiling(broker.url, n, opts.rawSeconds ?? RAW_SECONDS);
      raw.set(n, r);
      report(`raw ${n} pair(s): round trips/s`, r.perSecond, 'msg/s');
      report(`raw ${n} pair(s): p50 / p99 round trip`, r.p50, `/ ${r.p99.toFixed(2)} ms`);
    }

    const prefix = `bench-${hex(4)}`;
    const created = performance.now();
    peers.push(...(await createPeers(broker.url, prefix, maxPeers)));
    note(`${maxPeers} peer clients started in ${((performance.now() - created) / 1000).toFixed(1)} s`);

    for (const kind of opts.kinds) {
      heading(`echo bot on ${kind}: N sessions, back-to-back send → echo, ${seconds} s each`);
      const opened = await openStore(kind);
      const stats: CallStats = new Map();
      let bot: RelayClient | undefined;
      let errors = 0;
      try {
        bot = await benchClient(broker.url, prefix, {
          store: timedStore(opened.store, stats),
          powBits: 8,
          welcomeQuota: { perSenderPerMinute: 5, totalPerMinute: 100_000 },
        });
        bot.on('error', () => errors++);
        bot.setMessageHandler((m, reply) => reply(m.content.content));
        await bot.start();
        const echoBot = bot;

        const contact = performance.now();
        await inBatches(maxPeers, PEER_BATCH, (i) => roundTrip(peers[i]!, echoBot, 'hello'));
        const stored = await opened.store.getSessionByPeer(peers[0]!.userId);
        note(
          `first contact of ${maxPeers} peers in ${((performance.now() - contact) / 1000).toFixed(1)} s; ` +
            `stored MLS state ${stored?.state.length ?? '?'} B`,
        );

        for (const n of sessions) {
          const active = peers.slice(0, n);
          await Promise.all(active.map((p) => roundTrip(p, echoBot, MESSAGE_TEXT)));
          stats.clear();
          const r = await driveLoops(n, seconds, (i) => roundTrip(active[i]!, echoBot, MESSAGE_TEXT));
          const base = raw.get(n)!;
          report(`${kind} ${n} session(s): round trips/s`, r.perSecond, 'msg/s', {
            name: `raw ${n}`,
            value: base.perSecond,
          });
          report(`${kind} ${n} session(s): p50 round trip`, r.p50, 'ms', {
            name: 'raw p50',
            value: base.p50,
          });
          report(`${kind} ${n} session(s): p99 round trip`, r.p99, 'ms', {
            name: 'raw p99',
            value: base.p99,
          });
          note(`process CPU ${r.cpuMs.toFixed(2)} ms per round trip; ${storeBreakdown(stats, r.completed)}`);
        }
        const drops = echoBot.drops.total() + peers.reduce((sum, p) => sum + p.drops.total(), 0);
        if (drops > 0 || errors > 0) note(`bot errors ${errors}, inputs dropped by bot and peers ${drops}`);
      } finally {
        await bot?.stop().catch(() => undefined);
        await opened.dispose();
      }
    }
  } finally {
    await Promise.all(peers.map((p) => p.stop().catch(() => undefined)));
    await broker.close();
  }
}
