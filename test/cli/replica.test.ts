/**
 * `relay-bot start` as a replica (cli/replica.ts): `replicaSlot: auto` claims the lowest slot no
 * live replica holds, through leases in a real Postgres schema, and a released slot is reused;
 * doctor's line names the live replicas and what they hold.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../cli/config.js';
import {
  describeFenced,
  describeReplicas,
  describeSharedSlots,
  fencedReplicas,
  slotLease,
  startReplica,
  type StartedReplica,
} from '../../cli/replica.js';
import { DeadReplicas } from '../../framework/relay/dead-replicas.js';
import {
  deadOwners,
  DUTY,
  LeaseKeeper,
  MemoryLeaseStore,
  ReplicaSlotTaken,
} from '../../framework/relay/index.js';
import { until } from '../support/groups.js';
import { freshPgSchema, openPgIn, PG_URL, postgresAvailable, type OpenStore } from '../store/helpers.js';

const pgUp = await postgresAvailable('the replica slot tests');
const log = pino({ level: 'silent' });

interface LogLine {
  level: number;
  msg: string;
  holder?: string;
}
/** A logger whose JSON lines land in `lines`. */
function logTo(lines: LogLine[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return pino({ level: 'info' }, sink);
}

(pgUp ? describe : describe.skip)('startReplica on Postgres', () => {
  let schema: string;
  let drop: () => Promise<void>;
  const opened: OpenStore[] = [];
  const started: StartedReplica[] = [];

  beforeEach(async () => {
    ({ schema, drop } = await freshPgSchema());
  });
  afterEach(async () => {
    for (const r of started.splice(0)) await r.keeper.stop();
    for (const o of opened.splice(0)) await o.cleanup();
    await drop();
  });

  const config = (slot: string) =>
    loadConfig({
      env: {
        RELAY_BROKER_URL: 'mqtt://127.0.0.1:1883',
        DATABASE_URL: PG_URL,
        RELAY_SHARE_GROUP: 'bots',
        RELAY_REPLICA_SLOT: slot,
      },
    });
  const start = async (slot: string): Promise<StartedReplica> => {
    const db = await openPgIn(schema);
    opened.push(db);
    const r = await startReplica(config(slot), db.store.leases, log, { ttlMs: 3000 });
    started.push(r!);
    return r!;
  };

  test('auto: replicas started together get distinct slots, and a released slot is taken again', async () => {
    const rs = await Promise.all([start('auto'), start('auto'), start('auto')]);
    expect(rs.map((r) => r.slot).sort()).toEqual([0, 1, 2]);
    expect(rs.map((r) => r.label).sort()).toEqual(['bots/0', 'bots/1', 'bots/2']);
    // Exactly one of them owns each duty.
    for (const duty of Object.values(DUTY)) expect(rs.filter((r) => r.keeper.owns(duty))).toHaveLength(1);
    for (const r of rs) expect(r.keeper.owns(slotLease(r.slot!))).toBe(true);

    const zero = rs.find((r) => r.slot === 0)!;
    await zero.keeper.stop();
    started.splice(started.indexOf(zero), 1);
    const next = await start('auto');
    expect(next.slot).toBe(0);
  });

  test('a fixed slot names its replica id, with an instance per process; doctor lists it with its leases', async () => {
    const r = await start('4');
    expect(r.slot).toBeUndefined();
    expect(r.label).toBe('bots/4');
    expect(r.keeper.holder).toMatch(/^bots\/4~[0-9a-f]{8}$/);
    const leases = opened[0]!.store.leases;
    const line = describeReplicas(await leases.listReplicas(3000), await leases.listLeases());
    expect(line).toMatch(
      /^1 live: bots\/4~[0-9a-f]{8} \(\S+ pid \d+\) holds bundle, housekeeping, outbox-orphans, replica-slot\/4, scheduler, slot-sessions$/,
    );
  });

  test('a second process on a live fixed slot is refused, naming the fix; the first keeps everything', async () => {
    const first = await start('4');
    const lines: LogLine[] = [];
    const db = await openPgIn(schema);
    opened.push(db);
    const second = startReplica(config('4'), db.store.leases, logTo(lines), { ttlMs: 3000 });
    const refused = await second.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ReplicaSlotTaken);
    expect(refused).toMatchObject({ code: 'CONFIG', slot: 4, holder: first.keeper.holder });
    expect((refused as Error).message).toMatch(
      /^another process runs replica slot 4 \(holder bots\/4~[0-9a-f]{8}, since \d{4}-\d\d-\d\dT[^)]+\): give each replica its own broker\.replicaSlot, or use replicaSlot: auto$/,
    );
    // It said why it waited before it refused.
    expect(lines.some((l) => /replica slot 4 is held by bots\/4~/.test(l.msg))).toBe(true);
    // The first took no loss: it owns its slot and every duty, and is the only registered replica.
    await first.keeper.renewNow();
    expect(first.keeper.owned()).toEqual([...Object.values(DUTY), slotLease(4)].sort());
    const leases = opened[0]!.store.leases;
    expect((await leases.listReplicas(3000)).map((r) => r.replicaId)).toEqual([first.keeper.holder]);
    expect((await leases.listLeases()).filter((l) => l.live).map((l) => l.holder)).toEqual(
      Array(Object.values(DUTY).length + 1).fill(first.keeper.holder),
    );
  });

  test("restarted after a kill: waits for the dead run's slot lease to lapse, then takes over", async () => {
    const db = await openPgIn(schema);
    opened.push(db);
    const leases = db.store.leases;
    // What a SIGKILLed run leaves: its registry row and its leases, held until they expire.
    const dead = 'bots/4~deadbeef';
    await leases.registerReplica({ replicaId: dead, host: 'gone', pid: 1 });
    expect(await leases.acquireLease(slotLease(4), dead, 3000)).toBeDefined();
    expect(await leases.acquireLease(DUTY.scheduler, dead, 3000)).toBeDefined();
    const lines: LogLine[] = [];
    const r = await startReplica(config('4'), leases, logTo(lines), { ttlMs: 3000 });
    started.push(r!);
    expect(r!.keeper.owns(slotLease(4))).toBe(true);
    expect(r!.keeper.owns(DUTY.scheduler)).toBe(true);
    const waited = lines.find((l) => /replica slot 4 is held by bots\/4~deadbeef: waiting/.test(l.msg));
    expect(waited).toMatchObject({ level: 40, holder: dead });
    // Its earlier run's row is gone: it counts as dead at once, its outbox rows are taken over.
    expect((await leases.listReplicas(3000)).map((x) => x.replicaId)).toEqual([r!.keeper.holder]);
  });

  test('upgrade: a slot held under the bare slot name by an older release is waited out and its row read', async () => {
    const db = await openPgIn(schema);
    opened.push(db);
    const leases = db.store.leases;
    // An older release's process on slot 4, killed: holder `bots/4`, no instance.
    const old = 'bots/4';
    await leases.registerReplica({ replicaId: old });
    expect(await leases.acquireLease(slotLease(4), old, 3000)).toBeDefined();
    // Its outbox rows name it; who is dead reads it like the new format.
    const reading = new DeadReplicas({ registry: leases, self: 'x', staleAfterMs: 3000 });
    expect((await reading.read()).isDead(old)).toBe(false);
    const lines: LogLine[] = [];
    const r = await startReplica(config('4'), leases, logTo(lines), { ttlMs: 3000 });
    started.push(r!);
    expect(r!.keeper.holder).not.toBe(old);
    expect(r!.keeper.owns(slotLease(4))).toBe(true);
    expect(lines.some((l) => /held by bots\/4: waiting/.test(l.msg))).toBe(true);
    expect((await reading.read()).isDead(old)).toBe(true);
    // Its outbox rows (stamped `bots/4`) are a dead owner's, to be claimed; the new process's are not.
    const replicas = await leases.listReplicas(3000);
    expect(deadOwners([old, r!.keeper.holder], replicas, 'another-replica')).toEqual([old]);
    expect((await leases.listReplicas(3000)).map((x) => x.replicaId)).toEqual([r!.keeper.holder]);
  });

  test('doctor: a fenced fixed-slot replica is named as fenced, not as stopped', async () => {
    const r = await start('4');
    const leases = opened[0]!.store.leases;
    // What the client does once the broker link has been down for replica.fenceAfterMs.
    await r.keeper.fence();
    // Past the stale limit (3 s here): no heartbeat, but its slot lease is renewed all along.
    await new Promise((done) => setTimeout(done, 4000));
    const replicas = await leases.listReplicas(3000);
    const all = await leases.listLeases();
    expect(describeReplicas(replicas, all)).toBe('0 live; 1 fenced');
    expect(describeFenced(replicas, all)).toMatch(/^bots\/4~[0-9a-f]{8} \(\S+\): cut off from the broker/);
    await r.keeper.rejoin();
    expect(describeFenced(await leases.listReplicas(3000), await leases.listLeases())).toBeUndefined();
  });

  test('one process (no share group): no replica, every duty its own', async () => {
    const db = await openPgIn(schema);
    opened.push(db);
    const single = loadConfig({ env: { DATABASE_URL: PG_URL } });
    expect(await startReplica(single, db.store.leases, log)).toBeUndefined();
  });
});

test('describeReplicas counts replicas without a recent heartbeat apart', () => {
  const at = { startedAt: 1, lastSeen: 2 };
  const line = describeReplicas(
    [
      { replicaId: 'g/0', host: 'a', pid: 7, live: true, ...at },
      { replicaId: 'g/1', live: false, ...at },
    ],
    [
      { name: 'scheduler', holder: 'g/0', acquiredAt: 1, expiresAt: 9, live: true },
      { name: 'housekeeping', holder: 'g/1', acquiredAt: 1, expiresAt: 2, live: false },
    ],
  );
  expect(line).toBe(
    '1 live: g/0 (a pid 7) holds scheduler; 1 without a recent heartbeat (stopped or unreachable)',
  );
});

test('doctor names the processes that share one replica slot, in either holder format', () => {
  const at = { startedAt: 1, lastSeen: 2 };
  const lease = (name: string, holder: string, live = true) => ({
    name,
    holder,
    acquiredAt: 1,
    expiresAt: 9,
    live,
  });
  const replicas = [
    { replicaId: 'g/0~aaaaaaaa', host: 'a', pid: 1, live: true, ...at },
    { replicaId: 'g/0~bbbbbbbb', host: 'b', pid: 2, live: true, ...at },
    { replicaId: 'g/1', host: 'c', live: true, ...at },
    { replicaId: 'g/host-1', live: true, ...at },
    { replicaId: 'g/2~cccccccc', live: true, ...at },
    { replicaId: 'g/2~dddddddd', live: false, ...at },
  ];
  const leases = [lease('replica-slot/1', 'g/host-1'), lease('replica-slot/2', 'g/2~dddddddd', false)];
  expect(describeSharedSlots(replicas, leases)).toBe(
    "2 processes run replica slot g/0: g/0~aaaaaaaa (a pid 1), g/0~bbbbbbbb (b pid 2); 2 processes run replica slot g/1: g/1 (c), g/host-1. They take the slot's MQTT session from each other. Fix: give each replica its own broker.replicaSlot, or use replicaSlot: auto, then restart them",
  );
  expect(describeSharedSlots(replicas.slice(1, 5), leases.slice(1))).toBeUndefined();
});

test('doctor: a replica without a heartbeat that still renews its slot is fenced, named apart', async () => {
  let now = 1_000_000;
  const store = new MemoryLeaseStore(() => now);
  const fenced = new LeaseKeeper({ store, replica: { replicaId: 'g/host-1', host: 'b' } });
  const live = new LeaseKeeper({ store, replica: { replicaId: 'g/0', host: 'a' } });
  fenced.want(slotLease(1), { keepWhileFenced: true });
  fenced.want(DUTY.scheduler);
  await fenced.start();
  await live.start();
  try {
    await fenced.fence();
    // Past the stale limit: the fenced one renews its slot but sends no heartbeat.
    for (let i = 0; i < 2; i++) {
      now += 10_000;
      await fenced.renewNow();
      await live.renewNow();
    }
    const replicas = await store.listReplicas(15_000);
    const leases = await store.listLeases();
    expect(fencedReplicas(replicas, leases).map((r) => r.replicaId)).toEqual(['g/host-1']);
    expect(describeReplicas(replicas, leases)).toMatch(/^1 live: g\/0 \(a\)[^;]*; 1 fenced$/);
    expect(describeFenced(replicas, leases)).toMatch(
      /^g\/host-1 \(b\): cut off from the broker .* Fix: check that replica's network path to the broker/,
    );
    await fenced.rejoin();
    const after = await store.listReplicas(15_000);
    expect(describeFenced(after, await store.listLeases())).toBeUndefined();
  } finally {
    await fenced.stop();
    await live.stop();
  }
});

describe("a fixed slot's lease lost", () => {
  let now = 1_000_000;
  const store = new MemoryLeaseStore(() => now);
  const lines: Array<{ level: number; msg: string; holder?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const slotLog = pino({ level: 'info' }, sink);
  const fixed = loadConfig({
    env: {
      RELAY_BROKER_URL: 'mqtt://127.0.0.1:1883',
      DATABASE_URL: PG_URL,
      RELAY_SHARE_GROUP: 'g',
      RELAY_REPLICA_SLOT: '2',
    },
  });
  let replica: StartedReplica | undefined;
  afterEach(async () => {
    await replica?.keeper.stop();
    lines.splice(0);
  });
  const about = (pattern: RegExp) => lines.filter((l) => pattern.test(l.msg));

  test('renewed too late: the log says it is taken back on the next round, not to restart', async () => {
    replica = await startReplica(fixed, store, slotLog, { ttlMs: 3000 });
    // The store's clock passes the lease's expiry before a renewal (a slow database, a paused process).
    now += 5_000;
    await replica!.keeper.renewNow();
    await until(() => about(/next renewal round/).length > 0, 5_000);
    expect(replica!.keeper.owns(slotLease(2))).toBe(false);
    await replica!.keeper.renewNow();
    expect(replica!.keeper.owns(slotLease(2))).toBe(true);
    expect(lines.filter((l) => /restart/i.test(l.msg))).toEqual([]);
    expect(about(/next renewal round/)[0]).toMatchObject({ level: 40 });
  });

  test('held by another process: named as two replicas configured with one slot, with the fix', async () => {
    replica = await startReplica(fixed, store, slotLog, { ttlMs: 3000 });
    now += 5_000;
    expect(await store.acquireLease(slotLease(2), 'g/other-host-1', 60_000)).toBeDefined();
    await replica!.keeper.renewNow();
    await until(() => about(/two replicas/).length > 0, 5_000);
    expect(about(/two replicas/)[0]).toMatchObject({ level: 50, holder: 'g/other-host-1' });
    expect(about(/two replicas/)[0]!.msg).toMatch(/Fix: give each replica its own broker\.replicaSlot/);
    expect(about(/next renewal round/)).toEqual([]);
    await store.releaseLease(slotLease(2), 'g/other-host-1');
  });
});
