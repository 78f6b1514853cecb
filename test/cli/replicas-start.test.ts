/**
 * `relay-bot start` twice on one identity (issue #13): Mosquitto, one Postgres schema, a share group
 * and `RELAY_REPLICA_SLOT=auto`. Each replica claims its own slot, the duties have one owner between
 * them (/healthz), metrics carry the replica label, doctor lists both, and after a graceful stop of
 * one the other owns every duty.
 */
import { DUTY } from '../../framework/relay/index.js';
import { freshPgSchema, PG_URL, postgresAvailable } from '../store/helpers.js';
import { testBrokers, uniqueName } from '../support/broker.js';
import { runCli, startBot, tempDir, type RunningBot } from './helpers.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAvailable('the relay-bot start replica test');

async function health(bot: RunningBot): Promise<{ status: number; lines: string[] }> {
  const base = /^health: (http:\/\/\S+)\/healthz$/m.exec(bot.stdout())![1]!;
  const res = await fetch(`${base}/healthz`);
  return { status: res.status, lines: (await res.text()).trim().split('\n') };
}

const leasesOf = (lines: string[]): string[] => {
  const l = lines.find((x) => x.startsWith('leases: '))!.slice('leases: '.length);
  return l === 'none' ? [] : l.split(', ');
};
/**
 * The duties among a replica's leases (it also holds its slot's, replica-slot/<n>; its client id's
 * session lease is the line `session: held` instead).
 */
const dutiesOf = (lines: string[]): string[] => leasesOf(lines).filter((l) => !l.startsWith('replica-slot/'));

(hasMosquitto && pgUp ? test : test.skip)(
  'two replicas: own slots, one owner per duty, labelled metrics, doctor lists them, hand-over on stop',
  async () => {
    const tmp = await tempDir();
    const { schema, drop } = await freshPgSchema();
    const group = uniqueName('bots');
    const env = {
      RELAY_BROKER_URL: 'mqtt://127.0.0.1:1883',
      DATABASE_URL: PG_URL,
      RELAY_DATABASE_SCHEMA: schema,
      RELAY_TOPIC_PREFIX: uniqueName('rep'),
      RELAY_POW_BITS: '8',
      RELAY_SHARE_GROUP: group,
      RELAY_REPLICA_SLOT: 'auto',
      RELAY_METRICS_PORT: '0',
    };
    const bots: RunningBot[] = [];
    try {
      // One after the other: the first creates the identity, the second loads it.
      bots.push(await startBot([], { cwd: tmp.dir, env }));
      bots.push(await startBot([], { cwd: tmp.dir, env }));
      const [a, b] = bots as [RunningBot, RunningBot];
      expect(b.userId).toBe(a.userId);

      const [ha, hb] = [await health(a), await health(b)];
      expect([ha.status, hb.status]).toEqual([200, 200]);
      expect(ha.lines).toContain(`replica: ${group}/0`);
      expect(hb.lines).toContain(`replica: ${group}/1`);
      expect([...dutiesOf(ha.lines), ...dutiesOf(hb.lines)].sort()).toEqual(Object.values(DUTY).sort());
      expect(leasesOf(ha.lines)).toContain('replica-slot/0');
      expect(leasesOf(hb.lines)).toContain('replica-slot/1');
      expect([ha.lines, hb.lines].map((l) => l.includes('session: held'))).toEqual([true, true]);
      expect(
        [...leasesOf(ha.lines), ...leasesOf(hb.lines)].filter((l) => l.startsWith('mqtt-session/')),
      ).toEqual([]);

      const metricsUrl = /^metrics: (\S+)$/m.exec(b.stdout())![1]!;
      const scraped = await (await fetch(metricsUrl)).text();
      expect(scraped).toContain(`replica="${group}/1"`);
      // start hands the LeaseKeeper's fenced state to the metrics: neither replica is cut off.
      expect(scraped).toContain(`relay_replica_fenced{replica="${group}/1"} 0`);
      expect([ha.lines, hb.lines].map((l) => l.includes('fenced: no'))).toEqual([true, true]);

      const doctor = await runCli(['doctor'], { cwd: tmp.dir, env, timeoutMs: 60_000 });
      expect(doctor.stdout).toMatch(new RegExp(`replicas: 2 live: ${group}/\\S+ .*; ${group}/\\S+ `));

      // A graceful stop releases a's leases at once: b takes them on its next renewal (≤ 5 s).
      expect(await a.stop('SIGTERM')).toBe(0);
      const end = Date.now() + 15_000;
      while (dutiesOf((await health(b)).lines).length < Object.values(DUTY).length) {
        if (Date.now() > end) throw new Error(`b did not take the duties over: ${(await health(b)).lines}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      for (const bot of bots) await bot.stop('SIGKILL');
      await drop().catch(() => undefined);
      await tmp.remove();
    }
  },
  180_000,
);
