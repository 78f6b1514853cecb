/**
 * A group committer process for crash tests. On its first start it creates a group with the user
 * ids in RELAY_GROUP_MEMBERS and prints "GROUP <id>"; on every start it prints "READY <user id>".
 * It echoes "/echo x" in the group. The parent kills it with SIGKILL while members propose.
 * Env: RELAY_BROKER_URL, RELAY_PREFIX, RELAY_GROUP_MEMBERS, and DATABASE_URL (Postgres; schema in
 * RELAY_PG_SCHEMA) or RELAY_SQLITE_PATH.
 */
import { pino } from 'pino';
import { RelayClient } from '../../framework/relay/index.js';
import { env, sayReady, storeFromEnv } from './child.js';

const store = await storeFromEnv();
const logDir = process.env.RELAY_TEST_LOG_DIR;
const client = await RelayClient.create({
  ...(logDir
    ? {
        logger: pino(
          { level: 'debug' },
          pino.destination({ dest: `${logDir}/committer.log`, append: true, sync: true }),
        ),
      }
    : {}),
  store,
  broker: { url: env('RELAY_BROKER_URL') },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
  groups: { commitDelayMs: 50 },
});
client.setMessageHandler((m, reply) => {
  if (m.content.content.startsWith('/echo ')) reply(`echo: ${m.content.content.slice(6)}`);
});
client.on('drop', (d) => process.stderr.write(`group-child drop ${d.reason} ${d.topic}\n`));
client.on('error', (e) => process.stderr.write(`group-child error ${e.message}\n`));
await client.start();
sayReady(client.userId);
const groups = await client.groups();
const group = groups[0] ?? (await client.createGroup(env('RELAY_GROUP_MEMBERS').split(',')));
process.stdout.write(`GROUP ${group.groupId}\n`);
