/**
 * A RelayClient that streams to one peer as fast as it can, for the content crash test: one loop
 * sends `stream` parts (a new stream id per process, seq 0, 1, 2, …), another `typing` start/stop,
 * both through client.send, so each part is committed with the ratchet state before it is
 * published. The parent kills it with SIGKILL and restarts it on the same store.
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, RELAY_PEER, and DATABASE_URL (Postgres; schema in
 * RELAY_PG_SCHEMA) or RELAY_SQLITE_PATH.
 */
import { randomUUID } from 'node:crypto';
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const store = await storeFromEnv();
const client = await RelayClient.create({
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
});
await client.start();
sayReady(client.userId);

const peer = env('RELAY_PEER');
const streamId = `stream-${randomUUID()}`;

async function streamParts(): Promise<void> {
  for (let seq = 0; ; seq++) {
    await client.send(peer, { type: 'stream', id: streamId, seq, content: `part ${seq} ` });
  }
}

async function typing(): Promise<void> {
  for (let i = 0; ; i++) {
    await client.send(peer, { type: 'typing', state: i % 2 === 0 ? 'start' : 'stop', content: '' });
  }
}

await Promise.all([streamParts(), typing()]);
