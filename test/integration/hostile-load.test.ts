/**
 * Legitimate traffic under a free flood (issue 10, "What it must show"), against the machine's
 * Mosquitto with its DEFAULT configuration (max_queued_messages 1000): an echo bot in its own process,
 * on a durable store, takes 2,000 invalid-PoW envelopes at QoS 1 and then 6,000 at QoS 0, each
 * published as fast as one client can, with 20 legitimate messages from a real peer sent in the
 * middle of each flood. Every legitimate message must be answered exactly once. The slowest reply is
 * printed, not asserted on (shared, noisy machine).
 */
import { performance } from 'node:perf_hooks';
import {
  MemoryRelayStore,
  RelayClient,
  inboxTopic,
  userIdFromHex,
  type ReceivedMessage,
} from '../../framework/relay/index.js';
import { RawMqtt, invalidPowEnvelope } from '../support/attacker.js';
import { answersMqtt5, uniqueName } from '../support/broker.js';
import { kill, onPostgres, onSqlite, startChild, type Child } from '../support/child.js';
import { until } from '../support/groups.js';

const MOSQUITTO_URL = 'mqtt://127.0.0.1:1883';
/** echo-child.ts demands this many PoW bits. */
const BOT_POW_BITS = 8;
const LEGIT_PER_FLOOD = 20;
const REPLY_TIMEOUT_MS = 180_000;

const mosquitto = await answersMqtt5(MOSQUITTO_URL);
if (!mosquitto) console.warn(`no Mosquitto at ${MOSQUITTO_URL}: skipping the hostile-load test`);

interface FloodResult {
  slowestMs: number;
  medianMs: number;
  publishSeconds: number;
}

async function withBot(env: Record<string, string>): Promise<void> {
  const prefix = uniqueName('hostile');
  let bot: Child | undefined;
  let peer: RelayClient | undefined;
  let attacker: RawMqtt | undefined;
  try {
    bot = await startChild('echo-child.ts', {
      ...env,
      RELAY_BROKER_URL: MOSQUITTO_URL,
      RELAY_PREFIX: prefix,
    });
    const botId = bot.userId;
    const inbox = inboxTopic(prefix, userIdFromHex(botId));
    peer = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: MOSQUITTO_URL, clientId: uniqueName('hostile-peer'), sessionExpirySeconds: 0 },
      topicPrefix: prefix,
    });
    const replies = new Map<string, { at: number; count: number }>();
    peer.on('message', (m: ReceivedMessage) => {
      const to = m.content.replyTo;
      if (!to) return;
      const seen = replies.get(to);
      replies.set(to, { at: seen?.at ?? performance.now(), count: (seen?.count ?? 0) + 1 });
    });
    await peer.start();
    attacker = await RawMqtt.connect(MOSQUITTO_URL);
    // First contact outside the floods: the legitimate messages below use the session's access tokens.
    const warm = await peer.send(botId, '/echo warm-up');
    await until(() => replies.has(warm.id), REPLY_TIMEOUT_MS, 'the warm-up reply');

    const flood = async (qos: 0 | 1, count: number, label: string): Promise<FloodResult> => {
      const junk = Array.from({ length: count }, () =>
        invalidPowEnvelope(userIdFromHex(botId), BOT_POW_BITS),
      );
      const started = performance.now();
      const firstHalf = junk.slice(0, count / 2).map((b) => attacker!.publish(inbox, b, { qos }));
      const sentAt = new Map<string, number>();
      const legit = Array.from({ length: LEGIT_PER_FLOOD }, async (_, i) => {
        const t = performance.now();
        const { id } = await peer!.send(botId, `/echo ${label} ${i}`);
        sentAt.set(id, t);
      });
      const secondHalf = junk.slice(count / 2).map((b) => attacker!.publish(inbox, b, { qos }));
      await Promise.all([...firstHalf, ...legit, ...secondHalf]);
      const publishSeconds = (performance.now() - started) / 1000;
      const ids = [...sentAt.keys()];
      await until(() => ids.every((id) => replies.has(id)), REPLY_TIMEOUT_MS, `${label}: every reply`).catch(
        (e: Error) => {
          const missing = ids.filter((id) => !replies.has(id)).length;
          throw new Error(`${e.message} (${missing} of ${ids.length} legitimate messages unanswered)`);
        },
      );
      const latencies = ids.map((id) => replies.get(id)!.at - sentAt.get(id)!).sort((a, b) => a - b);
      return {
        slowestMs: latencies[latencies.length - 1]!,
        medianMs: latencies[Math.floor(latencies.length / 2)]!,
        publishSeconds,
      };
    };

    const q1 = await flood(1, 2000, 'qos1');
    const q0 = await flood(0, 6000, 'qos0');
    await new Promise((r) => setTimeout(r, 500)); // a duplicate reply would arrive now
    for (const [label, r] of [
      ['2,000 invalid-PoW at QoS 1', q1],
      ['6,000 invalid-PoW at QoS 0', q0],
    ] as const) {
      console.log(
        `hostile load (${env.DATABASE_URL ? 'Postgres' : 'SQLite'}), ${label}: ${LEGIT_PER_FLOOD} legitimate ` +
          `answered, slowest ${r.slowestMs.toFixed(0)} ms, median ${r.medianMs.toFixed(0)} ms ` +
          `(flood published in ${r.publishSeconds.toFixed(2)} s)`,
      );
    }
    expect([...replies.values()].every((r) => r.count === 1)).toBe(true);
    expect(replies.size).toBe(1 + 2 * LEGIT_PER_FLOOD);
  } finally {
    await attacker?.close();
    await peer?.stop();
    if (bot) await kill(bot);
  }
}

const maybe = mosquitto ? test : test.skip;

describe('hostile load against Mosquitto with its default configuration', () => {
  maybe(
    'invalid-PoW floods at QoS 1 then QoS 0: every legitimate /echo answered once (Postgres, else SQLite)',
    async () => {
      if (!(await onPostgres(withBot))) {
        console.warn('Postgres does not answer on 127.0.0.1:5432: running the hostile-load test on SQLite');
        await onSqlite(withBot);
      }
    },
    600_000,
  );
});
