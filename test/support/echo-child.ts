/**
 * A RelayClient echo process for crash tests: replies "echo: <text>" to every message through the
 * transactional handler, on a durable store. The parent kills it with SIGKILL and restarts it.
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, and DATABASE_URL (Postgres; schema in RELAY_PG_SCHEMA) or
 * RELAY_SQLITE_PATH.
 */
import { RelayClient } from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`echo-child needs ${name}`);
  return v;
};

const dataSource = await createRelayDataSource(
  process.env.DATABASE_URL
    ? {
        url: process.env.DATABASE_URL,
        ...(process.env.RELAY_PG_SCHEMA ? { schema: process.env.RELAY_PG_SCHEMA } : {}),
      }
    : { sqlitePath: env('RELAY_SQLITE_PATH') },
);
const store = new TypeOrmRelayStore(dataSource);
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
});
client.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
await client.start();
process.stdout.write(`READY ${client.userId}\n`);
