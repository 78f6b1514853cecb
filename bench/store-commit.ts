/**
 * Store benchmark part 1 (see bench/store.ts): the raw cost of one inbound-message commit(),
 * sequential and concurrent, against the durability floor of each store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  asGroupIdHex,
  type DirectConversationRecord,
  type GroupIdHex,
  type InboundCommit,
  type RelayStore,
  type UnixSeconds,
} from '../framework/relay/index.js';
import { PG_URL } from '../test/support/postgres.js';
import { heading, measure, measureAsync, note, report } from './harness.js';
import { hex, openStore, type StoreKind } from './store-open.js';

const STATE_BYTES = 3 * 1024;
const OUTBOX_PAYLOAD_BYTES = 700;
const COMMIT_SECONDS = 1.5;
const FLOOR_SECONDS = 1;
const CONCURRENT_COMMITTERS = 10;

const nowSeconds = (): UnixSeconds => Math.floor(Date.now() / 1000) as UnixSeconds;

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
