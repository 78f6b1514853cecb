/**
 * The assistant bot (bots/assistant) in a child process for the task restart test, on a durable
 * store, its model server from RELAY_ASSISTANT_URL / RELAY_ASSISTANT_MODEL (the test's fake one).
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, and DATABASE_URL (Postgres; schema in RELAY_PG_SCHEMA) or
 * RELAY_SQLITE_PATH.
 */
import { AssistantBot } from '../../bots/assistant/index.js';
import { BotRuntime } from '../../framework/bot/index.js';
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const store = await storeFromEnv();
const runtime = new BotRuntime(new AssistantBot(), { tasks: { progressEveryMs: 250 } });
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
  profile: runtime.profile,
});
runtime.attach(client, { store });
await client.start();
sayReady(client.userId);
