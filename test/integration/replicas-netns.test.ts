/**
 * One bot identity answering from two hosts (issue #13): two network namespaces, each joined to the
 * root namespace by a veth link, each running one replica of the echo bot (`relay-bot start`, one
 * share group, one Postgres schema). The broker is a private Mosquitto listening on the links'
 * root-side addresses (and loopback, for the peers); Postgres, which listens on loopback only, is
 * reached through a TCP forwarder in this process. Peers in the root namespace send `/echo`
 * commands throughout.
 *
 * Mid-run host A's link goes down (a pulled cable: nothing is closed, packets stop). Then:
 * - B keeps serving: commands are answered while A is cut off, before and after the broker gave A's
 *   connection up (keepalive, 1.5 × 30 s). Mosquitto's round robin goes on handing A's persistent
 *   session its share of the group's messages all along, even once the connection is given up: those
 *   wait for A (half the commands, with two replicas);
 * - A comes back: what it had committed and could not publish (its outbox) is published, the outbox
 *   ends empty, no command is answered twice, and every command sent after the broker gave A up is
 *   answered.
 * - Every command is answered, the ones the broker held for A included (once a known defect, see
 *   below); the test reports how many the replicas dropped as undecryptable (none expected).
 *
 * What this branch cannot show: A never coming back and B publishing A's committed rows (outbox
 * takeover of a dead replica, another change in flight). Here A publishes them itself on restore.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CONNECT_GUARD_MS } from '../../framework/relay/connect-guard.js';
import { DEFAULT_LEASE_TTL_MS, MemoryRelayStore, RelayClient } from '../../framework/relay/index.js';
import { DEFAULT_PROBE_EVERY_MS } from '../../framework/relay/replica-fence.js';
import { DEFAULT_DRAIN_LIMIT_MS } from '../../framework/relay/slot-sessions.js';
import type { RunningBot } from '../cli/helpers.js';
import { freshPgSchema, PG_URL, postgresAvailable } from '../store/helpers.js';
import { startPrivateBroker, testBrokers, uniqueName, type TestBroker } from '../support/broker.js';
import { freePort } from '../support/host.js';
import { createNetHosts, netnsUnavailable, type NetHost } from '../support/netns.js';
import { startBotIn } from '../support/netns-bot.js';
import { forwardTcp, type TcpForwarder } from '../support/netns-forward.js';

const hasMosquitto = (await testBrokers()).includes('mosquitto');
const pgUp = await postgresAvailable('the two-host replica test');
const noNetns = await netnsUnavailable();
if (noNetns) console.warn(`skipping the two-host replica test: ${noNetns}`);
if (!hasMosquitto)
  console.warn('skipping the two-host replica test: no Mosquitto (it needs shared subscriptions)');

const PEERS = 4;
const runs = noNetns === undefined && hasMosquitto && pgUp;

const POW_BITS = 8;

/**
 * How long after the restore A's own connection may take to come back, from the replicas' default
 * settings (the test sets none of them), each step at its worst:
 * - a drain of A's session may still hold A's session lease: it ends within its time limit;
 * - a lease A lost with the database link lapses in the store one ttl after its last renewal;
 * - fenced, A probes the broker every DEFAULT_PROBE_EVERY_MS, each probe within CONNECT_GUARD_MS;
 * - A's next renewal round comes within renewEveryMs (ttl / 3), and each of its two sequential
 *   store calls (heartbeat, acquire) answers or is given up within renewEveryMs (lease-keeper.ts);
 * - with the lease A connects at once (a connection that looked up is dropped first:
 *   transport-reconnect-gate.ts), or within the reconnect period (1 s) after a failed attempt.
 * Not MQTT.js's keepalive (1.5 × 30 s) nor TCP's retransmission backoff (up to 2 min): those are
 * what the session claim and the keeper no longer wait for.
 */
const RECONNECT_BOUND_MS =
  DEFAULT_DRAIN_LIMIT_MS +
  DEFAULT_LEASE_TTL_MS +
  DEFAULT_PROBE_EVERY_MS +
  CONNECT_GUARD_MS +
  3 * Math.floor(DEFAULT_LEASE_TTL_MS / 3) +
  1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Waits until `value()` has not changed for `quietMs` (or `maxMs` passed); returns the last value. */
async function settled(value: () => number, quietMs: number, maxMs: number): Promise<number> {
  const end = Date.now() + maxMs;
  let last = value();
  let since = Date.now();
  while (Date.now() - since < quietMs && Date.now() < end) {
    await sleep(100);
    const now = value();
    if (now !== last) [last, since] = [now, Date.now()];
  }
  return last;
}

/** A peer in the root namespace that counts each echo it got, by text. */
class Peer {
  readonly answers = new Map<string, number>();

  private constructor(
    readonly client: RelayClient,
    private readonly botId: string,
  ) {
    client.on('message', (m) => {
      if (m.from !== botId) return;
      const text = String(m.content.content);
      this.answers.set(text, (this.answers.get(text) ?? 0) + 1);
    });
  }

  static async start(url: string, prefix: string, botId: string): Promise<Peer> {
    const client = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url },
      topicPrefix: prefix,
      powBits: POW_BITS,
      powWorkers: 0,
    });
    const peer = new Peer(client, botId);
    await client.start();
    return peer;
  }

  send(text: string): Promise<void> {
    return this.client.send(this.botId, `/echo ${text}`).then(() => undefined);
  }
}

async function metricsOf(bot: RunningBot): Promise<string> {
  const url = /^metrics: (\S+)$/m.exec(bot.stdout())![1]!;
  return (await fetch(url)).text();
}

/** The value of the first metrics line starting with `prefix` (labels may follow), or NaN. */
async function metricLine(bot: RunningBot, prefix: string): Promise<number> {
  const line = (await metricsOf(bot)).split('\n').find((l) => l.startsWith(prefix));
  return Number(line?.split(' ').pop() ?? Number.NaN);
}

/** The replica's relay_messages_in_total, read from its metrics endpoint inside its host. */
async function messagesIn(bot: RunningBot): Promise<number> {
  const text = await metricsOf(bot);
  const line = text.split('\n').find((l) => l.startsWith('relay_messages_in_total'));
  return Number(line?.split(' ').pop() ?? 0);
}

/**
 * Copies the replicas' full output (debug logs on stderr) and the broker's log out of the test's
 * private directory, which the test removes: a failure under load is rare and needs them all.
 * Also on success with RELAY_TEST_KEEP_LOGS set. Returns where they are.
 */
async function keepLogs(bots: readonly RunningBot[], brokerLog: string): Promise<string> {
  const keep = await mkdtemp(path.join(tmpdir(), 'relay-netns-logs-'));
  const names = ['a', 'b'];
  for (const [i, bot] of bots.entries()) {
    await writeFile(path.join(keep, `bot-${names[i] ?? i}.stderr`), bot.stderr());
    await writeFile(path.join(keep, `bot-${names[i] ?? i}.stdout`), bot.stdout());
  }
  await writeFile(path.join(keep, 'mosquitto.log'), await readFile(brokerLog).catch(() => ''));
  return `replica and broker logs kept in ${keep}`;
}

(runs ? test : test.skip)(
  'one identity on two hosts: one cut off mid-run, the other keeps serving, nothing answered twice, the cut-off one catches up',
  async () => {
    const hosts: NetHost[] = [];
    const forwarders: TcpForwarder[] = [];
    const bots: RunningBot[] = [];
    const peers: Peer[] = [];
    let broker: TestBroker | undefined;
    let schema: { schema: string; drop(): Promise<void> } | undefined;
    let db: pg.Client | undefined;
    /** What went wrong, appended to a failure: the unanswered commands and every side's drops. */
    let diagnose: (() => Promise<string>) | undefined;
    const dir = await mkdtemp(path.join(tmpdir(), 'relay-netns-'));
    const brokerLog = path.join(dir, 'mosquitto.log');
    /** Set when the test ends: background waits stop. */
    let over = false;
    try {
      hosts.push(...(await createNetHosts(2)));
      const [a, b] = hosts as [NetHost, NetHost];

      // The broker: loopback for the peers, each link's root-side address for the replicas. `user
      // root` keeps it from dropping privileges, so it can write its log into this private dir.
      const linkPort = await freePort();
      broker = await startPrivateBroker('mosquitto', {
        extraConfig: [
          `listener ${linkPort} ${a.gateway}`,
          `listener ${linkPort} ${b.gateway}`,
          'user root',
          `log_dest file ${brokerLog}`,
          'log_type all',
        ],
      });
      const pgTarget = new URL(PG_URL);
      for (const h of hosts) {
        forwarders.push(
          await forwardTcp(h.serviceGateway, {
            host: pgTarget.hostname,
            port: Number(pgTarget.port || 5432),
          }),
        );
      }
      schema = await freshPgSchema();
      const prefix = uniqueName('netns');
      const shareGroup = uniqueName('bots');
      const envFor = (host: NetHost, slot: number, fwd: TcpForwarder): Record<string, string> => {
        const db = new URL(PG_URL);
        db.hostname = fwd.host;
        db.port = String(fwd.port);
        return {
          RELAY_BROKER_URL: `mqtt://${host.gateway}:${linkPort}`,
          DATABASE_URL: db.toString(),
          RELAY_DATABASE_SCHEMA: schema!.schema,
          RELAY_TOPIC_PREFIX: prefix,
          RELAY_POW_BITS: String(POW_BITS),
          RELAY_SHARE_GROUP: shareGroup,
          RELAY_REPLICA_SLOT: String(slot),
          RELAY_METRICS_HOST: host.address,
          RELAY_METRICS_PORT: '0',
          // Kept for a failure (see keepLogs): the lease and reconnect steps are logged at debug.
          RELAY_LOG_LEVEL: 'debug',
        };
      };
      // One after the other: the first creates the identity, the second loads it.
      bots.push(await startBotIn(a, { cwd: dir, env: envFor(a, 0, forwarders[0]!) }));
      bots.push(await startBotIn(b, { cwd: dir, env: envFor(b, 1, forwarders[1]!) }));
      const [botA, botB] = bots as [RunningBot, RunningBot];
      expect(botB.userId).toBe(botA.userId);

      for (let p = 0; p < PEERS; p++) peers.push(await Peer.start(broker.url, prefix, botA.userId));
      const sent: string[] = [];
      const send = async (peer: Peer, text: string): Promise<void> => {
        sent.push(text);
        await peer.send(text);
      };
      const answered = (text: string): number => peers.reduce((n, p) => n + (p.answers.get(text) ?? 0), 0);
      const allAnswered = (texts: readonly string[]): boolean => texts.every((t) => answered(t) > 0);
      diagnose = async () => {
        const drops = async (bot: RunningBot): Promise<string> =>
          (await metricsOf(bot).catch(() => ''))
            .split('\n')
            .filter((l) => /^relay_drops_total/.test(l) && !l.endsWith(' 0'))
            .join(', ');
        return (
          `unanswered: ${sent.filter((t) => answered(t) === 0).join(' ')}\n` +
          `peers' drops: ${peers.map((p) => JSON.stringify(Object.fromEntries(Object.entries(p.client.drops.snapshot()).filter(([, v]) => v > 0)))).join(' ')}\n` +
          `A's drops: ${await drops(botA)}\nB's drops: ${await drops(botB)}\n` +
          `A's stderr: ${botA.stderr().slice(-2000)}\nB's stderr: ${botB.stderr().slice(-2000)}`
        );
      };

      // First contact, then a round from every peer with both hosts up: both replicas serve.
      await Promise.all(peers.map((p, i) => send(p, `hello-${i}`)));
      await until(() => allAnswered(sent), 60_000, 'the first echoes');
      const before = peers.flatMap((p, i) => Array.from({ length: 10 }, (_, k) => `before-${i}-${k}`));
      await Promise.all(
        peers.map((p, i) =>
          Promise.all(before.filter((t) => t.startsWith(`before-${i}-`)).map((t) => send(p, t))),
        ),
      );
      await until(() => allAnswered(before), 60_000, 'the echoes before the cut');
      const [inA, inB] = [await messagesIn(botA), await messagesIn(botB)];
      expect(inA).toBeGreaterThan(0);
      expect(inB).toBeGreaterThan(0);

      const dbc = new pg.Client({ connectionString: PG_URL });
      db = dbc;
      await dbc.connect();
      const outboxTable = `"${schema.schema}"."outbox"`;
      const outboxRows = async (): Promise<number> =>
        Number(
          (await dbc.query(`SELECT count(*) AS n FROM ${outboxTable} WHERE quarantined_at IS NULL`)).rows[0]
            .n,
        );
      // First a one-way fault: A's packets to the broker are dropped (it still receives from it),
      // Postgres (on another address) stays reachable. The commands the broker hands A now are
      // committed with their replies in A's outbox, which A cannot publish.
      await a.dropOutboundTo(a.gateway);
      const held = peers.flatMap((_, i) => [`held-${i}-0`, `held-${i}-1`]);
      await Promise.all(held.map((t, j) => send(peers[j % PEERS]!, t)));
      await until(async () => (await outboxRows()) > 0, 30_000, "A's committed, unpublished replies");
      await sleep(1000); // the rest of A's share commits too
      const heldRows = await outboxRows();

      // The cut, with commands flowing: one every 100 ms, round robin, until the broker gives A up
      // (its keepalive, 1.5 × 30 s, runs out; Mosquitto logs it).
      await a.cut();
      const during: string[] = [];
      // Given up: by its keepalive, or because the replica holding DUTY.slotSessions took A's broker
      // session over to drain it (A's registry heartbeat stopped: its link to Postgres is cut too).
      const givenUp = async (): Promise<boolean> =>
        /has exceeded timeout, disconnecting|already connected, closing old connection/.test(
          await readFile(brokerLog, 'utf8').catch(() => ''),
        );
      for (let k = 0; !(await givenUp()); k++) {
        if (k > 1200) throw new Error('the broker did not give the cut-off replica up within 2 minutes');
        const text = `during-${k}`;
        during.push(text);
        await send(peers[k % PEERS]!, text);
        await sleep(100);
      }
      // B served while A was unreachable: every echo that arrived during the cut came from B.
      const answeredDuringCut = during.filter((t) => answered(t) > 0).length;
      expect(answeredDuringCut).toBeGreaterThan(0);
      // Rows A committed and could not publish stay in the outbox (B's go within milliseconds).
      // (With outbox takeover of a dead replica, B would publish them once A's leases ran out.)
      const leftByA = await outboxRows();

      // With A given up, B goes on answering new commands while A is still cut off. Not all of them:
      // Mosquitto (2.0.11) keeps handing A's persistent session its share of the group's messages
      // after it gave the connection up, and delivers them when A reconnects (checked below).
      const alone = peers.flatMap((_, i) => Array.from({ length: 5 }, (_, k) => `alone-${i}-${k}`));
      await Promise.all(
        peers.map((p, i) =>
          Promise.all(alone.filter((t) => t.startsWith(`alone-${i}-`)).map((t) => send(p, t))),
        ),
      );
      const aloneAnswered = (): number => alone.filter((t) => answered(t) > 0).length;
      await settled(aloneAnswered, 5000, 60_000);
      const answeredByBAlone = aloneAnswered();
      expect(answeredByBAlone).toBeGreaterThan(0);
      expect(botA.child.exitCode).toBeNull(); // A is still there, just unreachable

      // A comes back (its broker session is still there): what it had committed is published, and
      // the broker hands it what it held for it. Then the answers settle.
      // Connections the broker accepted from A's host (the drain of A's session comes from B's).
      const connectsFromA = async (): Promise<number> =>
        (await readFile(brokerLog, 'utf8').catch(() => '')).split(`New client connected from ${a.address}:`)
          .length - 1;
      const connectsBefore = await connectsFromA();
      await a.restore();
      const restoredAt = Date.now();
      // A's own connection is back: a new one from A's host in the broker's log (the metric alone
      // also reads 1 from a connection the broker closed during the cut that A did not notice yet).
      // Watched from the restore on, so the time it took is measured; awaited below.
      let reconnectMs: number | undefined;
      const reconnected = until(
        async () =>
          over ||
          ((await connectsFromA()) > connectsBefore &&
            (await metricLine(botA, 'relay_mqtt_connected').catch(() => 0)) === 1),
        RECONNECT_BOUND_MS,
        `A's own connection within ${RECONNECT_BOUND_MS} ms of the restore`,
      ).then(() => void (reconnectMs = Date.now() - restoredAt));
      reconnected.catch(() => undefined); // awaited below
      await until(async () => (await outboxRows()) === 0, 180_000, 'an empty outbox after A came back');
      const answers = (): number => sent.filter((t) => answered(t) > 0).length;
      await settled(answers, 10_000, 180_000);
      await sleep(1500); // a second answer to any command would arrive now

      expect(sent.filter((t) => answered(t) > 1)).toEqual([]);
      // What A had committed (its replies to the held commands) was published once it was back.
      expect(held.filter((t) => answered(t) !== 1)).toEqual([]);
      expect(alone.filter((t) => answered(t) === 0)).toEqual([]);
      await reconnected;
      const lost = sent.filter((t) => answered(t) === 0);
      const mlsOf = async (bot: RunningBot): Promise<number> =>
        (await metricLine(bot, 'relay_drops_total{reason="mls"')) || 0;
      const mlsDropsA = (await mlsOf(botA)) + (await mlsOf(botB));
      // Was a KNOWN DEFECT (issue #13), seen in 6 of 7 runs: the commands the broker held for A while
      // it was cut off reached A once it was back, and A dropped them as undecryptable (reason mls):
      // B had taken those peers' conversations further, skipping more generations than ts-mls's
      // default of 10 kept keys for. The retention is now 128 (docs/protocol.md §14 "Key
      // retention"), and A reconnects only with its session lease (session-claim.ts): 4 runs since
      // (2026-12-08, one before the lease, three after), 0 lost and 0 mls drops in each.
      // OPEN (2026-12-08, h-mqttconn): at load ~24, 3 of 7 runs lost the last ~32 commands of A's
      // share (during-56 on, peers 0 and 2): B dropped them as 'pow' while it drained A's session,
      // with A still cut off (7 s before the restore) and no lease or reconnect event on B. The
      // count matches access-refresh.ts's bound of 32 waiting envelopes: the drain hands B a burst
      // of envelopes whose access hint B has not loaded, and those past the bound are dropped.
      // 0 of 4 runs on the code before that change (load 10-23) showed it.
      // Explained (h-drainwait): the drain connection feeds the same inbox pipeline and so shared
      // the own transport's budget of 32 waiting envelopes; a drain now has its own, its whole
      // receive window (access-refresh.ts), so its backlog waits for the reload. Unit evidence:
      // test/unit/inbox-access-reloads.test.ts (100 of one hint via a drain: 0 dropped; 32 before).
      // Not reproduced here since: at load 3-15, 4 runs with the fix and 3 on the old code all
      // lost 0 (drains of 78-98 messages each), so these runs do not tell the two apart.
      expect(lost).toEqual([]);
      console.log(
        `two hosts: ${sent.length} commands; before the cut A took ${inA}, B ${inB} messages; ` +
          `${during.length} sent during the cut (${answeredDuringCut} answered before the broker gave A up); ` +
          `${answeredByBAlone}/${alone.length} sent after that answered by B while A was cut off; ` +
          `${heldRows} outbox rows of A's after the one-way fault, ${leftByA} when the broker gave A up; ${lost.length} never answered ` +
          `(the replicas dropped ${mlsDropsA} as undecryptable, reason mls); ` +
          `A's own connection back ${reconnectMs} ms (±100 ms polling) after the restore (bound ${RECONNECT_BOUND_MS} ms)`,
      );
    } catch (e) {
      if (diagnose && e instanceof Error) e.message += `\n${await diagnose()}`;
      if (e instanceof Error) e.message += `\n${await keepLogs(bots, brokerLog)}`;
      throw e;
    } finally {
      over = true;
      if (process.env.RELAY_TEST_KEEP_LOGS) console.log(await keepLogs(bots, brokerLog));
      await db?.end().catch(() => undefined);
      await Promise.all(peers.map((p) => p.client.stop().catch(() => undefined)));
      for (const bot of bots) await bot.stop('SIGKILL');
      for (const f of forwarders) await f.close();
      for (const h of hosts) await h.remove();
      await broker?.close();
      await schema?.drop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  },
  420_000,
);
