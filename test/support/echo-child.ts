/**
 * A RelayClient echo process for crash tests: replies "echo: <text>" to every message through the
 * transactional handler, on a durable store. The parent kills it with SIGKILL and restarts it.
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, and DATABASE_URL (Postgres; schema in RELAY_PG_SCHEMA) or
 * RELAY_SQLITE_PATH.
 */
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const store = await storeFromEnv();
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
});
client.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
await client.start();
sayReady(client.userId);
