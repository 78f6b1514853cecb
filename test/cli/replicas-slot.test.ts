/**
 * One fixed replica slot, two `relay-bot start` processes (issue #13, slot-claim.ts), through
 * Mosquitto and Postgres. Each process holds its leases under an id of its own, so a second process
 * configured with a live process's slot refuses to start, naming the fix, instead of taking the
 * slot's MQTT session from the first back and forth (DISCONNECT 0x8E); and a process restarted on
 * its slot after SIGKILL waits for the dead run's slot lease to lapse (nobody renews it) and serves
 * again, answering what was sent to it meanwhile.
 */
import { freshPgSchema, openPgIn, PG_URL, postgresAvailable } from '../store/helpers.js';
import { testBrokers, uniqueName } from '../support/broker.js';
import { GroupWorld, until, type Member } from '../support/groups.js';
import { runCli, startBot, tempDir, type RunningBot } from './helpers.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAvailable('the replica slot start tests');
const run = hasMosquitto && pgUp ? test : test.skip;

/** The bot's answer to `/echo <text>` sent by `peer`, once it arrived. */
async function echoed(peer: Member, botId: string, text: string, timeoutMs = 60_000): Promise<void> {
  const { id } = await peer.client.send(botId, `/echo ${text}`);
  await until(
    () => peer.messages.some((m) => m.from === botId && m.content.replyTo === id),
    timeoutMs,
    `the answer to /echo ${text}`,
  );
}

describe('relay-bot start on one fixed replica slot', () => {
  let world: GroupWorld;
  let tmp: { dir: string; remove(): Promise<void> };
  let drop: () => Promise<void>;
  let env: Record<string, string>;
  let group: string;
  let schema: string;
  const bots: RunningBot[] = [];

  beforeEach(async () => {
    world = new GroupWorld('mqtt://127.0.0.1:1883');
    tmp = await tempDir();
    const fresh = await freshPgSchema();
    drop = fresh.drop;
    schema = fresh.schema;
    group = uniqueName('bots');
    env = {
      RELAY_BROKER_URL: 'mqtt://127.0.0.1:1883',
      DATABASE_URL: PG_URL,
      RELAY_DATABASE_SCHEMA: fresh.schema,
      RELAY_TOPIC_PREFIX: world.prefix,
      RELAY_POW_BITS: '8',
      RELAY_SHARE_GROUP: group,
      RELAY_REPLICA_SLOT: '0',
    };
  });
  afterEach(async () => {
    await world.close();
    for (const bot of bots.splice(0)) await bot.stop('SIGKILL');
    await drop().catch(() => undefined);
    await tmp.remove();
  });

  run(
    'a second process on a live slot refuses to start with the fix; the first answers, its session untouched',
    async () => {
      const first = await startBot([], { cwd: tmp.dir, env });
      bots.push(first);
      const peer = await world.start();
      await echoed(peer, first.userId, 'before');

      const second = await runCli(['start'], { cwd: tmp.dir, env, timeoutMs: 90_000 });
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(
        new RegExp(
          `relay-bot: another process runs replica slot 0 \\(holder ${group}/0~[0-9a-f]{8}, since [^)]+\\): give each replica its own broker\\.replicaSlot, or use replicaSlot: auto`,
        ),
      );
      expect(second.stdout).not.toMatch(/user id:/);

      await echoed(peer, first.userId, 'after');
      expect(first.child.exitCode).toBeNull();
      // Its broker session was never taken over by a connection with its client id.
      expect(first.stderr()).not.toMatch(/taken over/);

      // Doctor lists the one process on the slot; the refused one left no row and no lease.
      const doctor = await runCli(['doctor'], { cwd: tmp.dir, env, timeoutMs: 60_000 });
      expect(doctor.stdout).toMatch(new RegExp(`replicas: 1 live: ${group}/0~[0-9a-f]{8} `));
      expect(doctor.stdout).not.toMatch(/replica slots:/);
    },
    240_000,
  );

  run(
    'restarted after SIGKILL: it waits for the dead run to lapse, then serves, with what was sent meanwhile',
    async () => {
      const first = await startBot([], { cwd: tmp.dir, env });
      bots.push(first);
      const holder = new RegExp(`${group}/0~[0-9a-f]{8}`).exec(
        (await runCli(['doctor'], { cwd: tmp.dir, env, timeoutMs: 60_000 })).stdout,
      )?.[0];
      expect(holder).toBeDefined();
      const peer = await world.start();
      await echoed(peer, first.userId, 'before');
      await first.stop('SIGKILL');

      // Sent while no process runs the slot: the broker keeps it in the slot's session.
      const { id: meanwhile } = await peer.client.send(first.userId, '/echo meanwhile');
      const again = await startBot([], { cwd: tmp.dir, env, timeoutMs: 90_000 });
      bots.push(again);
      // It waited for the killed run's lease, saying so, rather than refusing or taking it at once.
      expect(again.stderr()).toContain(`replica slot 0 is held by ${holder}: waiting for its lease to lapse`);
      expect(again.stderr()).not.toMatch(/another process runs replica slot/);
      await until(
        () => peer.messages.some((m) => m.from === first.userId && m.content.replyTo === meanwhile),
        60_000,
        'the answer to what was sent while the slot was down',
      );
      await echoed(peer, first.userId, 'after');

      // The killed run's registry row is gone: no stale replica left behind by the restart.
      const doctor = await runCli(['doctor'], { cwd: tmp.dir, env, timeoutMs: 60_000 });
      expect(doctor.stdout).toMatch(new RegExp(`replicas: 1 live: ${group}/0~[0-9a-f]{8} `));
      expect(doctor.stdout).not.toContain(holder!);
      expect(doctor.stdout).not.toMatch(/without a recent heartbeat/);
    },
    240_000,
  );

  run(
    'doctor fails naming two live processes on one slot (an older release beside a new one, say)',
    async () => {
      const db = await openPgIn(schema);
      try {
        // What two processes on slot 0 leave in the registry: an older release's bare id and one
        // with an instance, both beating.
        await db.store.leases.registerReplica({ replicaId: `${group}/0`, host: 'a', pid: 1 });
        await db.store.leases.registerReplica({ replicaId: `${group}/0~0123abcd`, host: 'b', pid: 2 });
        const doctor = await runCli(['doctor'], { cwd: tmp.dir, env, timeoutMs: 60_000 });
        expect(doctor.stdout).toContain(
          `FAIL  replica slots: 2 processes run replica slot ${group}/0: ${group}/0 (a pid 1), ${group}/0~0123abcd (b pid 2). They take the slot's MQTT session from each other. Fix: give each replica its own broker.replicaSlot`,
        );
        expect(doctor.code).not.toBe(0);
      } finally {
        await db.cleanup();
      }
    },
    120_000,
  );
});
