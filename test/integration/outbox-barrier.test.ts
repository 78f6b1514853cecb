/**
 * Issue 10, hole 8: an outbox row that can never be published must not block every later row.
 * Through the real broker: a stuck group-commit row (awaitAck) ahead of everything is quarantined
 * and the replies of other conversations still go out; replies and sends too large to publish are
 * refused before they are committed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  MemoryRelayStore,
  RelayClient,
  type InboundCommit,
  type ReceivedMessage,
  type RelayStore,
  type UnixSeconds,
} from '../../framework/relay/index.js';
import { BotMetrics, storeCounts } from '../../cli/metrics.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { RawMqtt } from '../support/attacker.js';
import { startPrivateBroker, uniqueName } from '../support/broker.js';
import { useRelayClients } from '../support/relay-clients.js';

const LIMIT = 8 * 1024;

const relay = useRelayClients();
const { clients } = relay;
const raws: RawMqtt[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(raws.splice(0).map((r) => r.close()));
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A real in-memory store that also notes the size of every outbox row committed to it. */
class RecordingStore extends MemoryRelayStore {
  readonly committedRows: Array<{ id: string; bytes: number; awaitAck?: boolean; dependsOn?: string }> = [];
  override async commit(c: InboundCommit): Promise<void> {
    await super.commit(c);
    for (const o of c.outbox ?? []) {
      this.committedRows.push({
        id: o.id,
        bytes: o.payload.length,
        ...(o.awaitAck ? { awaitAck: true } : {}),
        ...(o.dependsOn !== undefined ? { dependsOn: o.dependsOn } : {}),
      });
    }
  }
}

async function startClient(prefix: string, opts: { store?: RelayStore; maxEnvelopeBytes?: number } = {}) {
  const client = await relay.create({
    store: opts.store ?? new MemoryRelayStore(),
    topicPrefix: prefix,
    powBits: 8,
    ...(opts.maxEnvelopeBytes !== undefined ? { maxEnvelopeBytes: opts.maxEnvelopeBytes } : {}),
  });
  return client;
}

/** A bot answering `echo: <text>`, and `/big` with a reply larger than it may publish. */
function echoBot(client: RelayClient): void {
  client.setMessageHandler((m, reply) => {
    const text = m.content.content;
    reply(text === '/big' ? 'x'.repeat(LIMIT + 1000) : `echo: ${text}`);
  });
}

function collect(client: RelayClient): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  client.on('message', (m) => got.push(m));
  return got;
}

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a group commit row that cannot be published is quarantined with its Welcome; later replies of other conversations flow', async () => {
  const prefix = uniqueName('relay-barrier');
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-barrier-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const ds = await createRelayDataSource({ sqlitePath: path.join(dir, 'relay.sqlite') });
  const store = new TypeOrmRelayStore(ds);
  cleanups.push(() => store.close());
  // A commit row (awaitAck: its Welcome waits for it) left by an earlier run under a larger limit.
  const now = Math.floor(Date.now() / 1000) as UnixSeconds;
  const welcomeTopic = `${prefix}/inbox/invitee`;
  await store.commit({
    outbox: [
      {
        id: 'stuck-commit',
        topic: `${prefix}/g/stuck`,
        payload: randomBytes(LIMIT + 1),
        awaitAck: true,
        createdAt: now,
      },
      {
        id: 'its-welcome',
        topic: welcomeTopic,
        payload: randomBytes(64),
        dependsOn: 'stuck-commit',
        createdAt: now,
      },
    ],
  });
  const watcher = await RawMqtt.connect(relay.broker.url);
  raws.push(watcher);
  await watcher.watch(welcomeTopic);
  const bot = await startClient(prefix, { store, maxEnvelopeBytes: LIMIT });
  echoBot(bot);
  const metrics = new BotMetrics({ processMetrics: false });
  metrics.instrument(bot, storeCounts(ds));
  cleanups.push(async () => metrics.detach());
  const quarantined: string[] = [];
  bot.on('quarantine', (q) => quarantined.push(`${q.id}: ${q.reason}`));
  await bot.start();

  const alice = await startClient(prefix);
  const carol = await startClient(prefix);
  await alice.start();
  await carol.start();
  const atAlice = collect(alice);
  const atCarol = collect(carol);
  await alice.send(bot.userId, 'from alice');
  await carol.send(bot.userId, 'from carol');
  await until('both replies', () => atAlice.length === 1 && atCarol.length === 1);
  expect(atAlice[0]!.content.content).toBe('echo: from alice');
  expect(atCarol[0]!.content.content).toBe('echo: from carol');
  expect(quarantined).toEqual(['stuck-commit: payload of 8193 bytes exceeds maxPayloadBytes 8192']);
  expect(await metrics.registry.getSingleMetricAsString('relay_outbox_quarantined_total')).toMatch(
    /^relay_outbox_quarantined_total 1$/m,
  );
  // Retried no longer, and its Welcome was set aside with it instead of being released.
  const pending = (await store.listOutbox()).map((r) => r.id);
  expect(pending).not.toContain('stuck-commit');
  expect(pending).not.toContain('its-welcome');
  await new Promise((r) => setTimeout(r, 300));
  expect(watcher.captured(welcomeTopic)).toEqual([]);
  const kept = (await ds.query(
    `SELECT "id" FROM "outbox" WHERE "quarantined_at" IS NOT NULL ORDER BY "seq"`,
  )) as Array<{ id: string }>;
  expect(kept.map((r) => r.id)).toEqual(['stuck-commit', 'its-welcome']);
});

test('a reply too large to publish is refused before commit: the handler gets an error, the next reply goes', async () => {
  const prefix = uniqueName('relay-bigreply');
  const store = new RecordingStore();
  const bot = await startClient(prefix, { store, maxEnvelopeBytes: LIMIT });
  echoBot(bot);
  const errors: Error[] = [];
  bot.on('error', (e) => errors.push(e));
  await bot.start();
  const alice = await startClient(prefix);
  await alice.start();
  const atAlice = collect(alice);
  await alice.send(bot.userId, '/big');
  await alice.send(bot.userId, 'after');
  await until('the reply to "after"', () => atAlice.length >= 1);
  expect(atAlice.map((m) => m.content.content)).toEqual(['echo: after']);
  await until('the error', () => errors.length >= 1);
  expect(errors[0]!.message).toMatch(/reply .*exceeds maxPayloadBytes 8192/);
  expect(store.committedRows.filter((r) => r.bytes > LIMIT)).toEqual([]);
});

test('send() of a message too large to publish rejects before anything is committed', async () => {
  const prefix = uniqueName('relay-bigsend');
  const store = new RecordingStore();
  const alice = await startClient(prefix, { store, maxEnvelopeBytes: LIMIT });
  const bob = await startClient(prefix);
  await alice.start();
  await bob.start();
  const atBob = collect(bob);
  await alice.send(bob.userId, 'hello');
  await until('hello', () => atBob.length === 1);
  const rowsBefore = store.committedRows.length;
  await expect(alice.send(bob.userId, 'y'.repeat(LIMIT))).rejects.toThrow(/exceeds maxPayloadBytes 8192/);
  expect(store.committedRows.slice(rowsBefore)).toEqual([]);
  expect((await store.listOutbox()).filter((r) => r.payload.length > LIMIT)).toEqual([]);
  await alice.send(bob.userId, 'still here');
  await until('still here', () => atBob.length === 2);
  expect(atBob[1]!.content.content).toBe('still here');
});

test("send() of a message above the broker's Maximum Packet Size rejects before anything is committed", async () => {
  const limited = await startPrivateBroker(relay.broker.kind, { maxPacketSize: 6000 });
  cleanups.push(() => limited.close());
  const prefix = uniqueName('relay-maxpacket');
  const make = async (store: RelayStore) => {
    const c = await RelayClient.create({
      store,
      broker: { url: limited.url },
      topicPrefix: prefix,
      powBits: 8,
    });
    clients.push(c);
    await c.start();
    return c;
  };
  const store = new RecordingStore();
  const alice = await make(store);
  const bob = await make(new MemoryRelayStore());
  const atBob = collect(bob);
  await alice.send(bob.userId, 'hello');
  await until('hello', () => atBob.length === 1);
  const rowsBefore = store.committedRows.length;
  await expect(alice.send(bob.userId, 'z'.repeat(7000))).rejects.toThrow(
    /exceeds the broker's Maximum Packet Size 6000/,
  );
  expect(store.committedRows.slice(rowsBefore)).toEqual([]);
  await alice.send(bob.userId, 'small again');
  await until('small again', () => atBob.length === 2);
  expect(atBob[1]!.content.content).toBe('small again');
});

test('the Welcomes of a group commit are stored as depending on it', async () => {
  const prefix = uniqueName('relay-welcome-dep');
  const store = new RecordingStore();
  const alice = await startClient(prefix, { store });
  const bob = await startClient(prefix);
  const carol = await startClient(prefix);
  for (const c of [alice, bob, carol]) await c.start();
  const joined = new Promise<void>((resolve) => carol.on('group', (e) => e.kind === 'joined' && resolve()));
  const info = await alice.createGroup([bob.userId]);
  const before = store.committedRows.length;
  await alice.addToGroup(info.groupId, [carol.userId]);
  await joined;
  const rows = store.committedRows.slice(before);
  const commit = rows.find((r) => r.awaitAck);
  expect(commit).toBeDefined();
  const welcomes = rows.filter((r) => r.dependsOn !== undefined);
  expect(welcomes).toHaveLength(1);
  expect(welcomes[0]!.dependsOn).toBe(commit!.id);
});

test('in a group, a reply too large to publish is left out of the commit and reported; the next one goes', async () => {
  const prefix = uniqueName('relay-bigreply-group');
  const store = new RecordingStore();
  const bot = await startClient(prefix, { store, maxEnvelopeBytes: LIMIT });
  echoBot(bot);
  const errors: Error[] = [];
  bot.on('error', (e) => errors.push(e));
  await bot.start();
  const joined = new Promise<void>((resolve) => bot.on('group', (e) => e.kind === 'joined' && resolve()));
  const alice = await startClient(prefix);
  await alice.start();
  const got: string[] = [];
  alice.on('message', (m) => m.conversation.kind === 'group' && got.push(m.content.content));
  const group = await alice.createGroup([bot.userId]);
  await joined;
  await alice.sendToGroup(group.groupId, '/big');
  await alice.sendToGroup(group.groupId, 'after');
  await until('the reply to "after"', () => got.length >= 1);
  expect(got).toEqual(['echo: after']);
  await until('the error', () => errors.length >= 1);
  expect(errors[0]!.message).toMatch(/reply not sent: .*exceeds maxPayloadBytes 8192/);
  expect(store.committedRows.filter((r) => r.bytes > LIMIT)).toEqual([]);
});
