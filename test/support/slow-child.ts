/**
 * An echo process whose handler takes RELAY_SLOW_MS for messages starting with "slow" (others are
 * answered at once), for the parking crash test. Same environment as echo-child.ts.
 */
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const slowMs = Number(env('RELAY_SLOW_MS'));
const store = await storeFromEnv();
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
  parkAfterMs: 100,
});
client.setMessageHandler(async (m, reply) => {
  if (m.content.content.startsWith('slow')) await new Promise((r) => setTimeout(r, slowMs));
  reply(`echo: ${m.content.content}`);
});
await client.start();
sayReady(client.userId);
