/**
 * One replica of an echo bot for the replica outbox test (issue 13): a RelayClient on the Postgres
 * schema the parent named, in share group RELAY_SHARE_GROUP at slot RELAY_SLOT, with a LeaseKeeper
 * (ttl RELAY_LEASE_TTL_MS) wanting every duty except those in RELAY_SKIP_DUTIES (comma-separated).
 * When a message's text is RELAY_HANG_ON, the commit carrying its reply is made durable, "COMMITTED"
 * is printed, and the commit never returns: the reply is in the outbox and never published, which
 * is where the parent kills this process with SIGKILL.
 */
import { DUTY, LeaseKeeper, RelayClient, type RelayStore } from '../../framework/relay/index.js';
import { withCommit } from '../../framework/relay/outbox-quarantine.js';
import { env, sayReady, storeFromEnv } from './child.js';

const store = await storeFromEnv();
const shareGroup = env('RELAY_SHARE_GROUP');
const slot = Number(env('RELAY_SLOT'));
const ttlMs = Number(env('RELAY_LEASE_TTL_MS'));
const hangOn = process.env.RELAY_HANG_ON;
const skip = new Set((process.env.RELAY_SKIP_DUTIES ?? '').split(',').filter(Boolean));
const replicaId = `${shareGroup}/${slot}`;

const keeper = new LeaseKeeper({ store: store.leases, replica: { replicaId }, ttlMs });
keeper.on('error', () => undefined);
for (const duty of Object.values(DUTY)) if (!skip.has(duty)) keeper.want(duty);
await keeper.start();

let hanging = false;
/** The store, with a commit that carries outbox rows never returning once `hanging` is set. */
const hooked: RelayStore = withCommit(store, async (changes) => {
  await store.commit(changes);
  if (!hanging || !changes.outbox?.length) return;
  process.stdout.write('COMMITTED\n');
  await new Promise<never>(() => undefined);
});

const client = await RelayClient.create({
  store: hooked,
  broker: { url: env('RELAY_BROKER_URL'), shareGroup, replicaSlot: slot },
  topicPrefix: env('RELAY_PREFIX'),
  powBits: 8,
  duties: keeper,
  replica: { replicaId, registry: store.leases, staleAfterMs: ttlMs, orphanCheckMs: 250 },
});
client.setMessageHandler((m, reply) => {
  if (m.content.content === hangOn) hanging = true;
  return reply(`echo: ${m.content.content}`);
});
await client.start();
sayReady(client.userId);
