/**
 * What durable storage costs per message. Part 1: the raw cost of one `commit()` shaped like an
 * inbound message (session row with ~3 KB state, processed digest, envelope digest, one outbox row)
 * on Memory, SQLite (WAL, synchronous=FULL, temp file) and Postgres (fresh schema, default
 * synchronous_commit), sequential and with 10 concurrent committers, against the durability floor
 * of each (one fdatasync; one autocommitted single-row INSERT). Part 2: sustained echo round trips
 * through a real broker for 1, 10 and 100 concurrent sessions with the bot on each store, against
 * the same request/reply pattern on the raw MQTT transport measured in the same run.
 *
 * Bot and peers share this process (and its event loop), so end-to-end figures include the peers'
 * own MLS and sealing work; the per-round-trip CPU printed with each configuration shows how close
 * the process is to one saturated core.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  asGroupIdHex,
  MemoryRelayStore,
  MqttTransport,
  RelayClient,
  type DirectConversationRecord,
  type GroupIdHex,
  type InboundCommit,
  type ReceivedMessage,
  type RelayStore,
  type UnixSeconds,
} from '../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../framework/store/index.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from '../test/support/postgres.js';
import { createRawPeers, withTimeout } from './raw-peers.js';
import { pickBroker } from './broker.js';
import { benchClient, inBatches } from './clients.js';
import { closedLoop, heading, measure, measureAsync, note, percentile, report } from './harness.js';

export type StoreKind = 'memory' | 'sqlite' | 'postgres';

const STATE_BYTES = 3 * 1024;
const OUTBOX_PAYLOAD_BYTES = 700;
const RAW_PAYLOAD_BYTES = 600;
const COMMIT_SECONDS = 1.5;
const FLOOR_SECONDS = 1;
const CONCURRENT_COMMITTERS = 10;
const RAW_SECONDS = 3;
const E2E_SECONDS = 5;
const SESSION_COUNTS = [1, 10, 100] as const;
const PEER_BATCH = 10;
/** Something like a short chat line; the envelope around it is what the broker carries. */
const MESSAGE_TEXT = 'x'.repeat(120);

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const nowSeconds = (): UnixSeconds => Math.floor(Date.now() / 1000) as UnixSeconds;

// ---- stores -------------------------------------------------------------------------------------

interface OpenedStore {
  readonly kind: StoreKind;
  readonly store: RelayStore;
  /** SQLite only: the temp directory holding the database, on the same filesystem. */
  readonly dir?: string;
  /** Postgres only: the throwaway schema. */
  readonly schema?: string;
  dispose(): Promise<void>;
}

async function openStore(kind: StoreKind): Promise<OpenedStore> {
  if (kind === 'memory') {
    const store = new MemoryRelayStore();
    return { kind, store, dispose: () => store.close() };
  }
  if (kind === 'sqlite') {
    const dir = await mkdtemp(path.join(tmpdir(), 'relay-bench-store-'));
    const removeDir = () => rm(dir, { recursive: true, force: true });
    try {
      const store = new TypeOrmRelayStore(
        await createRelayDataSource({ sqlitePath: path.join(dir, 'relay.sqlite') }),
      );
      return {
        kind,
        store,
        dir,
        dispose: async () => {
          try {
            await store.close();
          } finally {
            await removeDir();
          }
        },
      };
    } catch (e) {
      await removeDir();
      throw e;
    }
  }
  const schema = `relay_bench_${hex(6)}`;
  await createPgSchema(schema);
  try {
    const store = new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
    return {
      kind,
      store,
      schema,
      dispose: async () => {
        try {
          await store.close();
        } finally {
          await dropPgSchema(schema);
        }
      },
    };
  } catch (e) {
    await dropPgSchema(schema);
    throw e;
  }
}

async function availableKinds(): Promise<StoreKind[]> {
  if (await postgresAnswers()) return ['memory', 'sqlite', 'postgres'];
  note(`Postgres at ${new URL(PG_URL).host} does not answer: its lines are skipped`);
  return ['memory', 'sqlite'];
}

// ---- part 1: raw commit cost --------------------------------------------------------------------

/** One conversation's row and what the next inbound message will write. */
interface Seat {
  readonly groupId: GroupIdHex;
  readonly peerId: string;
  readonly topic: string;
  readonly state: Buffer;
  readonly access: Uint8Array;
  version: number;
  messages: number;
}

const OUTBOX_PAYLOAD = randomBytes(OUTBOX_PAYLOAD_BYTES);

function sessionOf(seat: Seat, now: UnixSeconds): DirectConversationRecord {
  return {
    kind: 'direct',
    groupId: seat.groupId,
    peerId: seat.peerId,
    state: seat.state,
    epoch: 1n,
    initiatedUnconfirmed: false,
    inboundAccess: { current: seat.access },
    messagesSinceCommit: seat.messages,
    unconfirmedOutgoing: [],
    updatedAt: now,
    version: seat.version,
  };
}

async function newSeat(store: RelayStore): Promise<Seat> {
  const seat: Seat = {
    groupId: asGroupIdHex(hex(32)),
    peerId: hex(16),
    topic: `bench/${hex(16)}/inbox`,
    state: randomBytes(STATE_BYTES),
    access: randomBytes(32),
    version: 0,
    messages: 0,
  };
  await store.commit({
    conversations: [sessionOf(seat, nowSeconds())],
    peers: [{ userId: seat.peerId, identityKey: randomBytes(32), sealKey: randomBytes(32), powBits: 8 }],
  });
  seat.version = 1;
  return seat;
}

/** What receiveMessage commits for an application message with one reply. */
function inboundCommit(seat: Seat): InboundCommit {
  seat.messages++;
  seat.state.writeUInt32BE(seat.messages, 0);
  const now = nowSeconds();
  return {
    conversations: [sessionOf(seat, now)],
    processed: { groupId: seat.groupId, digest: hex(32), at: now },
    envelope: { digest: hex(32), expiresAt: (now + 360) as UnixSeconds },
    outbox: [
      {
        id: randomUUID(),
        topic: seat.topic,
        payload: OUTBOX_PAYLOAD,
        messageExpirySeconds: 300,
        createdAt: now,
      },
    ],
  };
}

/** Process CPU (user + system) since `before`, µs. */
function cpuMicros(before: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

async function commitOnce(store: RelayStore, seat: Seat): Promise<void> {
  await store.commit(inboundCommit(seat));
  seat.version++;
}

async function concurrentCommits(
  store: RelayStore,
  seats: Seat[],
  seconds: number,
): Promise<{ perSecond: number; meanUs: number; cpuUs: number }> {
  await Promise.all(seats.map((s) => commitOnce(store, s)));
  let count = 0;
  let busyMs = 0;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    seats.map(async (seat) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await commitOnce(store, seat);
        busyMs += performance.now() - t;
        count++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { perSecond: count / elapsed, meanUs: (busyMs / count) * 1000, cpuUs: cpuMicros(cpuBefore) / count };
}

/**
 * The SQLite durability floors, on the same filesystem: a 4 KB overwrite + fdatasync, and a bare
 * better-sqlite3 transaction inserting one 64 B row (WAL, synchronous=FULL), both synchronous as
 * better-sqlite3 is.
 */
function sqliteFloorsUs(dir: string): { fdatasync: number; insert: number } {
  const fd = openSync(path.join(dir, 'fsync-floor.bin'), 'w');
  const buf = randomBytes(4096);
  let fdatasync: number;
  try {
    fdatasync =
      measure(
        () => {
          writeSync(fd, buf, 0, buf.length, 0);
          fdatasyncSync(fd);
        },
        { seconds: FLOOR_SECONDS, warmup: 5 },
      ).meanMs * 1000;
  } finally {
    closeSync(fd);
  }
  const db = new Database(path.join(dir, 'floor.sqlite'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE "floor" ("id" INTEGER PRIMARY KEY, "b" BLOB NOT NULL)');
    const begin = db.prepare('BEGIN IMMEDIATE');
    const insert = db.prepare('INSERT INTO "floor" ("b") VALUES (?)');
    const commit = db.prepare('COMMIT');
    const row = randomBytes(64);
    const t = measure(
      () => {
        begin.run();
        insert.run(row);
        commit.run();
      },
      { seconds: FLOOR_SECONDS, warmup: 20 },
    );
    return { fdatasync, insert: t.meanMs * 1000 };
  } finally {
    db.close();
  }
}

/** The Postgres floors: one round trip, and one durable single-row INSERT (a WAL flush). */
async function pgFloorsUs(schema: string): Promise<{ roundTrip: number; insert: number }> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const table = `"${schema}"."bench_floor"`;
    await client.query(`CREATE TABLE ${table} ("id" bigserial PRIMARY KEY, "b" bytea NOT NULL)`);
    const roundTrip = await measureAsync(
      async () => {
        await client.query('SELECT 1');
      },
      { seconds: FLOOR_SECONDS, warmup: 20 },
    );
    const row = randomBytes(64);
    const insert = await measureAsync(
      async () => {
        await client.query(`INSERT INTO ${table} ("b") VALUES ($1)`, [row]);
      },
      { seconds: FLOOR_SECONDS, warmup: 20 },
    );
    return { roundTrip: roundTrip.meanMs * 1000, insert: insert.meanMs * 1000 };
  } finally {
    await client.end();
  }
}

export async function commitCosts(kinds: readonly StoreKind[]): Promise<void> {
  heading(
    `commit() of one inbound message (session row, ${STATE_BYTES / 1024} KB state, processed, envelope, ${OUTBOX_PAYLOAD_BYTES} B outbox row)`,
  );
  for (const kind of kinds) {
    const opened = await openStore(kind);
    try {
      let floor: { name: string; value: number } | undefined;
      if (opened.dir !== undefined) {
        const floors = sqliteFloorsUs(opened.dir);
        report('floor: 4 KB overwrite + fdatasync (same fs)', floors.fdatasync, 'µs');
        report('floor: bare better-sqlite3 1-row INSERT tx', floors.insert, 'µs');
        floor = { name: '1-row INSERT', value: floors.insert };
      }
      if (opened.schema !== undefined) {
        const floors = await pgFloorsUs(opened.schema);
        report('floor: postgres SELECT 1 round trip', floors.roundTrip, 'µs');
        report('floor: postgres 1-row INSERT, autocommit', floors.insert, 'µs');
        floor = { name: '1-row INSERT', value: floors.insert };
      }
      const seat = await newSeat(opened.store);
      for (let i = 0; i < 50; i++) await commitOnce(opened.store, seat);
      const cpuBefore = process.cpuUsage();
      const seq = await measureAsync(() => commitOnce(opened.store, seat), {
        seconds: COMMIT_SECONDS,
        warmup: 0,
      });
      const seqCpuUs = cpuMicros(cpuBefore) / seq.calls;
      report(`${kind}: commit, sequential`, seq.meanMs * 1000, 'µs', floor);
      report(`${kind}: commits/s, sequential`, seq.perSecond, 'commit/s');
      const seats = await Promise.all(
        Array.from({ length: CONCURRENT_COMMITTERS }, () => newSeat(opened.store)),
      );
      const conc = await concurrentCommits(opened.store, seats, COMMIT_SECONDS);
      report(`${kind}: commits/s, ${CONCURRENT_COMMITTERS} concurrent sessions`, conc.perSecond, 'commit/s', {
        name: 'sequential',
        value: seq.perSecond,
      });
      report(`${kind}: commit latency, ${CONCURRENT_COMMITTERS} concurrent`, conc.meanUs, 'µs', floor);
      note(
        `process CPU per commit: ${seqCpuUs.toFixed(0)} µs sequential, ${conc.cpuUs.toFixed(0)} µs with ${CONCURRENT_COMMITTERS} concurrent`,
      );
    } finally {
      await opened.dispose();
    }
  }
}

// ---- part 2: end to end -------------------------------------------------------------------------

interface RoundTrips {
  /** Round trips that finished inside the window. */
  readonly count: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** Process CPU (user + system) per round trip, ms; bot, peers and MQTT client all included. */
  readonly cpuMs: number;
  /** Every round trip completed, the ones finishing after the window included. */
  readonly completed: number;
}

/** Runs `n` loops of back-to-back round trips for `seconds`; in-flight trips are awaited, not counted. */
async function driveLoops(
  n: number,
  seconds: number,
  once: (i: number) => Promise<void>,
): Promise<RoundTrips> {
  const cpuBefore = process.cpuUsage();
  const { latencies, completed } = await closedLoop(n, seconds, once);
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    cpuMs: (cpu.user + cpu.system) / 1000 / Math.max(completed, 1),
    completed,
  };
}

/** The ceiling: the same N-pair request/reply through the same broker on plain MqttTransport. */
async function rawCeiling(url: string, n: number, seconds: number): Promise<RoundTrips> {
  const base = `bench-raw-${hex(4)}`;
  const echo = new MqttTransport({ url, clientId: `${base}-echo`, sessionExpirySeconds: 0 });
  echo.onMessage(async (m) => {
    // Like the bot: the reply is published without awaiting its PUBACK, then the request is acked.
    const i = m.topic.slice(m.topic.lastIndexOf('/') + 1);
    void echo.publish(`${base}/peer/${i}`, m.payload, { qos: 1 }).catch(() => undefined);
  });
  const raw = createRawPeers(url, base, n, RAW_PAYLOAD_BYTES);
  const { peers, once } = raw;
  try {
    await Promise.all([echo, ...peers].map((t) => t.connect()));
    await echo.subscribe(`${base}/bot/+`, { qos: 1 });
    await Promise.all(peers.map((p, i) => p.subscribe(`${base}/peer/${i}`, { qos: 1 })));
    await Promise.all(peers.map((_, i) => once(i)));
    return await driveLoops(n, seconds, once);
  } finally {
    await Promise.all([echo, ...peers].map((t) => t.end().catch(() => undefined)));
  }
}

type CallStats = Map<string, { calls: number; ms: number }>;

/** The store with the wall time of every call summed per method (concurrent calls overlap). */
function timedStore(store: RelayStore, stats: CallStats): RelayStore {
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        const start = performance.now();
        try {
          return await fn.apply(target, args);
        } finally {
          const s = stats.get(prop) ?? { calls: 0, ms: 0 };
          s.calls++;
          s.ms += performance.now() - start;
          stats.set(prop, s);
        }
      };
    },
  });
}

function storeBreakdown(stats: CallStats, trips: number): string {
  const rows = [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((sum, [, s]) => sum + s.ms, 0);
  const parts = rows
    .filter(([, s]) => s.ms / trips >= 0.01)
    .map(([name, s]) => `${name} ${(s.ms / trips).toFixed(2)}`);
  return `bot store wall ms per round trip: ${(total / trips).toFixed(2)} = ${parts.join(', ')}`;
}

function replyFrom(peer: RelayClient, from: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: ReceivedMessage): void => {
      if (m.from !== from) return;
      peer.off('message', on);
      resolve();
    };
    peer.on('message', on);
  });
}

async function roundTrip(peer: RelayClient, bot: RelayClient, text: string): Promise<void> {
  const got = replyFrom(peer, bot.userId);
  await peer.send(bot.userId, text);
  await withTimeout(got, 'relay echo');
}

function createPeers(url: string, prefix: string, count: number): Promise<RelayClient[]> {
  return inBatches(count, PEER_BATCH, async () => {
    const c = await benchClient(url, prefix);
    await c.start();
    return c;
  });
}

export interface EndToEndOptions {
  kinds: readonly StoreKind[];
  sessions?: readonly number[];
  seconds?: number;
  rawSeconds?: number;
}

export async function endToEnd(opts: EndToEndOptions): Promise<void> {
  const sessions = opts.sessions ?? SESSION_COUNTS;
  const seconds = opts.seconds ?? E2E_SECONDS;
  const maxPeers = Math.max(...sessions);
  const broker = await pickBroker();
  note(`broker: ${broker.kind} at ${broker.url}`);
  const peers: RelayClient[] = [];
  try {
    heading(
      `raw transport ceiling: N pairs of QoS 1 request/reply, ${RAW_PAYLOAD_BYTES} B, ${opts.rawSeconds ?? RAW_SECONDS} s`,
    );
    const raw = new Map<number, RoundTrips>();
    for (const n of sessions) {
      const r = await rawCeiling(broker.url, n, opts.rawSeconds ?? RAW_SECONDS);
      raw.set(n, r);
      report(`raw ${n} pair(s): round trips/s`, r.perSecond, 'msg/s');
      report(`raw ${n} pair(s): p50 / p99 round trip`, r.p50, `/ ${r.p99.toFixed(2)} ms`);
    }

    const prefix = `bench-${hex(4)}`;
    const created = performance.now();
    peers.push(...(await createPeers(broker.url, prefix, maxPeers)));
    note(`${maxPeers} peer clients started in ${((performance.now() - created) / 1000).toFixed(1)} s`);

    for (const kind of opts.kinds) {
      heading(`echo bot on ${kind}: N sessions, back-to-back send → echo, ${seconds} s each`);
      const opened = await openStore(kind);
      const stats: CallStats = new Map();
      let bot: RelayClient | undefined;
      let errors = 0;
      try {
        bot = await benchClient(broker.url, prefix, {
          store: timedStore(opened.store, stats),
          powBits: 8,
          welcomeQuota: { perSenderPerMinute: 5, totalPerMinute: 100_000 },
        });
        bot.on('error', () => errors++);
        bot.setMessageHandler((m, reply) => reply(m.content.content));
        await bot.start();
        const echoBot = bot;

        const contact = performance.now();
        await inBatches(maxPeers, PEER_BATCH, (i) => roundTrip(peers[i]!, echoBot, 'hello'));
        const stored = await opened.store.getSessionByPeer(peers[0]!.userId);
        note(
          `first contact of ${maxPeers} peers in ${((performance.now() - contact) / 1000).toFixed(1)} s; ` +
            `stored MLS state ${stored?.state.length ?? '?'} B`,
        );

        for (const n of sessions) {
          const active = peers.slice(0, n);
          await Promise.all(active.map((p) => roundTrip(p, echoBot, MESSAGE_TEXT)));
          stats.clear();
          const r = await driveLoops(n, seconds, (i) => roundTrip(active[i]!, echoBot, MESSAGE_TEXT));
          const base = raw.get(n)!;
          report(`${kind} ${n} session(s): round trips/s`, r.perSecond, 'msg/s', {
            name: `raw ${n}`,
            value: base.perSecond,
          });
          report(`${kind} ${n} session(s): p50 round trip`, r.p50, 'ms', {
            name: 'raw p50',
            value: base.p50,
          });
          report(`${kind} ${n} session(s): p99 round trip`, r.p99, 'ms', {
            name: 'raw p99',
            value: base.p99,
          });
          note(`process CPU ${r.cpuMs.toFixed(2)} ms per round trip; ${storeBreakdown(stats, r.completed)}`);
        }
        const drops = echoBot.drops.total() + peers.reduce((sum, p) => sum + p.drops.total(), 0);
        if (drops > 0 || errors > 0) note(`bot errors ${errors}, inputs dropped by bot and peers ${drops}`);
      } finally {
        await bot?.stop().catch(() => undefined);
        await opened.dispose();
      }
    }
  } finally {
    await Promise.all(peers.map((p) => p.stop().catch(() => undefined)));
    await broker.close();
  }
}

export async function run(): Promise<void> {
  const kinds = await availableKinds();
  await commitCosts(kinds);
  await endToEnd({ kinds });
}
