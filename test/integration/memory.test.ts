/**
 * Issue #12: a bot with 10,000 idle 1:1 sessions and 1,000 groups in Postgres starts and reaches
 * every one of them within 300 MB of resident memory.
 *
 * Generation (here, in Jest's process, so it does not count): a real bot on a fresh schema makes
 * first contact with two peers and is invited into a three-member group, all over the broker; its
 * stored session, peer and group records are then the templates that are committed again through
 * the store's public API under fresh group ids, peer ids, topic ids and access keys (the MLS state
 * bytes are the real ones, repeated). Measurement (test/support/memory-child.ts, its own process):
 * RelayClient + BotRuntime start on that schema, list the groups, read each group and each peer's
 * session one at a time, and report their resident set size; the peak is asserted.
 *
 * RELAY_MEMORY_SESSIONS / RELAY_MEMORY_GROUPS change the counts (e.g. for a larger run by hand).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  MemoryRelayStore,
  RelayClient,
  type ConversationRecord,
  type PeerRecord,
  type RelayStore,
} from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { until } from '../support/groups.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresForTests } from '../support/postgres.js';

const SESSIONS = Number(process.env.RELAY_MEMORY_SESSIONS ?? 10_000);
const GROUPS = Number(process.env.RELAY_MEMORY_GROUPS ?? 1_000);
const RSS_LIMIT = 300 * 1024 * 1024;
/** Conversations per commit while filling: one transaction each. */
const BATCH = 500;
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

const pgUp = await postgresForTests('the 10k/1k memory test');

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

interface Measured {
  rss: number;
  maxRss: number;
  groups: number;
  sessions: number;
}

function measureInChild(env: Record<string, string>): Promise<Measured> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'test/support/memory-child.ts')],
    {
      cwd: ROOT,
      env: { ...process.env, ...env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => {
      const m = /MEMORY (\{.*\})/.exec(out);
      if (code === 0 && m) resolve(JSON.parse(m[1]!) as Measured);
      else reject(new Error(`memory child exited with ${code}: ${out}`));
    });
  });
}

/** A bot on `store` with two peers it has sessions with and one group of the three. */
async function makeTemplates(
  broker: TestBroker,
  prefix: string,
  store: RelayStore,
): Promise<{ sessions: ConversationRecord[]; peers: PeerRecord[]; group: ConversationRecord }> {
  const clients: RelayClient[] = [];
  const start = async (s: RelayStore) => {
    const c = await RelayClient.create({
      store: s,
      broker: { url: broker.url },
      topicPrefix: prefix,
      powBits: 8,
      powWorkers: 0,
      welcomeQuota: { perSenderPerMinute: 100, totalPerMinute: 1000 },
    });
    clients.push(c);
    await c.start();
    return c;
  };
  try {
    const bot = await start(store);
    const [alice, bob] = [await start(new MemoryRelayStore()), await start(new MemoryRelayStore())];
    await alice.send(bot.userId, { content: 'hi', id: hex(8) });
    await bob.send(bot.userId, { content: 'hi', id: hex(8) });
    await until(async () => (await store.listSessions()).length === 2, 30_000, 'two sessions');
    await alice.createGroup([bot.userId, bob.userId], { name: 'template' });
    await until(async () => (await store.listGroups()).length === 1, 30_000, 'the group');
    const sessions = await store.listSessions();
    const peers = await Promise.all(sessions.map((s) => store.getPeer(s.peerId)));
    const [group] = await store.listGroups();
    return {
      sessions: sessions.map((s) => ({ ...s, kind: 'direct' as const })),
      peers: peers.map((p) => p!),
      group: { ...group!, kind: 'group' as const },
    };
  } finally {
    for (const c of clients) await c.stop().catch(() => undefined);
  }
}

/** Commits `count` copies of the templates, each under fresh ids and keys, BATCH per transaction. */
async function fill(
  store: RelayStore,
  count: number,
  copy: (i: number) => { conversation: ConversationRecord; peer?: PeerRecord },
): Promise<void> {
  for (let i = 0; i < count; i += BATCH) {
    const made = Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => copy(i + j));
    await store.commit({
      conversations: made.map((m) => m.conversation),
      peers: made.flatMap((m) => (m.peer ? [m.peer] : [])),
    });
  }
}

(pgUp ? describe : describe.skip)('memory (issue #12)', () => {
  let broker: TestBroker;
  const schema = `relay_memory_${hex(6)}`;

  beforeAll(async () => {
    broker = await getTestBroker();
    await createPgSchema(schema);
  });
  afterAll(async () => {
    await broker?.close();
    await dropPgSchema(schema).catch(() => undefined);
  });

  test(`${SESSIONS} idle sessions and ${GROUPS} groups: start and scan within 300 MB RSS`, async () => {
    const prefix = uniqueName('mem');
    const t0 = performance.now();
    const store = new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
    try {
      const t = await makeTemplates(broker, prefix, store);
      await fill(store, SESSIONS, (i) => {
        const template = t.sessions[i % t.sessions.length]!;
        if (template.kind !== 'direct') throw new Error('template is not a session');
        const peerId = hex(16);
        return {
          conversation: {
            ...template,
            groupId: hex(32) as typeof template.groupId,
            peerId,
            inboundAccess: { current: randomBytes(32) },
            version: 0,
          },
          peer: { ...t.peers[i % t.peers.length]!, userId: peerId },
        };
      });
      await fill(store, GROUPS, () => {
        if (t.group.kind !== 'group') throw new Error('template is not a group');
        return {
          conversation: {
            ...t.group,
            groupId: hex(32) as typeof t.group.groupId,
            topicId: hex(16),
            version: 0,
          },
        };
      });
      expect((await store.listSessionAccess()).length).toBe(SESSIONS + 2);
    } finally {
      await store.close();
    }

    const t1 = performance.now();
    const m = await measureInChild({
      MEMORY_BROKER_URL: broker.url,
      MEMORY_PREFIX: prefix,
      MEMORY_PG_URL: PG_URL,
      MEMORY_SCHEMA: schema,
    });
    console.log(
      `memory: ${m.sessions} sessions, ${m.groups} groups scanned; RSS ${(m.rss / 2 ** 20).toFixed(0)} MB, ` +
        `peak ${(m.maxRss / 2 ** 20).toFixed(0)} MB; filled in ${((t1 - t0) / 1000).toFixed(1)} s, ` +
        `child ran ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );
    expect(m.sessions).toBe(SESSIONS + 2);
    expect(m.groups).toBe(GROUPS + 1);
    expect(m.maxRss).toBeLessThanOrEqual(RSS_LIMIT);
  }, 300_000);
});
