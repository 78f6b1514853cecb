/**
 * The silent members of bench/group-bot.ts's 100-member group, as the broker sees them:
 *
 *   group-bot-listeners-child.ts <brokerUrl> <topic> <count>
 *
 * `count` plain MQTT connections subscribed to the group topic at QoS 1, as a member's client
 * subscribes, each counting what it is delivered and decrypting nothing. The real members whose
 * leaves these stand for joined the group and went offline; these keep the broker's fan-out (one
 * delivery per member per message, each acknowledged) real, in a process of their own so that
 * neither the bot's CPU nor the senders' includes it.
 *
 * JSON lines to the parent (bench/child.ts): `{"ready":true}` once every listener is subscribed;
 * the CPU answers carry `{"work":{"deliveries":n}}`, the deliveries counted over all listeners since start.
 */
import { randomBytes } from 'node:crypto';
import { MqttTransport } from '../framework/relay/index.js';
import { runChild, say, serveParent } from './child.js';
import { inBatches } from './clients.js';

const BATCH = 20;

async function main(argv: readonly string[]): Promise<void> {
  const [url, topic, countText] = argv;
  const count = Number(countText);
  if (!url || !topic || !(count > 0))
    throw new Error('usage: group-bot-listeners-child.ts <brokerUrl> <topic> <count>');
  const tag = randomBytes(4).toString('hex');
  let deliveries = 0;
  const listeners = await inBatches(count, BATCH, async (i) => {
    const t = new MqttTransport({ url, clientId: `bench-gbot-listen-${tag}-${i}`, sessionExpirySeconds: 0 });
    t.onMessage(async () => void deliveries++);
    await t.connect();
    await t.subscribe(topic, { qos: 1 });
    return t;
  });
  say({ ready: true });
  serveParent(
    async () => {
      await Promise.all(listeners.map((t) => t.end().catch(() => undefined)));
    },
    () => ({ work: { deliveries } }),
  );
}

runChild(main);
