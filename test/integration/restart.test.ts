/**
 * Infrastructure restarts during a run: the broker (a private Mosquitto with persistence) and the
 * database (a private PostgreSQL cluster) each go down for about two seconds while a peer keeps
 * sending numbered messages to an echo bot. Nobody is restarted by hand: both clients reconnect by
 * themselves, and at the end the peer holds exactly one reply per message.
 *
 * RELAY_RESTART_BROKER_SIGNAL=SIGKILL kills Mosquitto instead of stopping it. Its persistence is a
 * periodic snapshot, so messages it had acknowledged can be lost: that run only reports what
 * arrived and asserts nothing about it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { answersMqtt5, getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { freePort, systemUser, waitUntilServing } from '../support/host.js';
import { findPostgresBin, startPrivatePostgres } from '../support/private-postgres.js';

const MESSAGES = 100;
const OUTAGE_MS = 2000;
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const KILL_SIGNAL = process.env.RELAY_RESTART_BROKER_SIGNAL === 'SIGKILL' ? 'SIGKILL' : 'SIGTERM';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Everything a test started; afterAll tears it down even when the test failed half-way. */
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

// ------------------------------------------------------------------ private Mosquitto

interface RestartableBroker {
  url: string;
  log(): string;
  /** SIGTERM (Mosquitto writes its persistence file on the way out) or SIGKILL. */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same port, config and persistence directory. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The embedded broker keeps sessions in memory only, so a restart test needs the real one. */
function mosquittoInstalled(): boolean {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.some((d) => d && existsSync(path.join(d, 'mosquitto')));
}

async function startPersistentMosquitto(): Promise<RestartableBroker> {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-mosq-persist-'));
  const dbDir = path.join(dir, 'db');
  await mkdir(dbDir);
  // Run as root, Mosquitto drops to its own user before it writes the persistence file.
  if (process.getuid?.() === 0) {
    await chmod(dir, 0o755);
    const user = systemUser('mosquitto');
    if (user) await chown(dbDir, user.uid, user.gid);
  }
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'set_tcp_nodelay true',
      'persistence true',
      `persistence_location ${dbDir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      '',
    ].join('\n'),
  );
  const url = `mqtt://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const start = async (): Promise<void> => {
    const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    if (await waitUntilServing(proc, () => answersMqtt5(url, 500))) return;
    throw new Error(`private mosquitto on port ${port} did not start:\n${output}`);
  };
  const stop = async (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
    child = undefined;
  };
  const close = async (): Promise<void> => {
    await stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await start();
  } catch (e) {
    await close();
    throw e;
  }
  return { url, log: () => output, stop, start, close };
}

// ------------------------------------------------------------------ echo bots

interface Bot {
  userId: string;
  client?: RelayClient;
  close(): Promise<void>;
}

/** An in-process echo bot on a TypeOrmRelayStore over a temp SQLite file. */
async function startInProcessBot(brokerUrl: string, prefix: string): Promise<Bot> {
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-restart-bot-'));
  const ds = await createRelayDataSource({ sqlitePath: path.join(dir, 'relay.sqlite') });
  const store = new TypeOrmRelayStore(ds);
  const client = await RelayClient.create({
    store,
    broker: { url: brokerUrl },
    topicPrefix: prefix,
    powBits: 8,
  });
  client.setMessageHandler((m, reply) => reply(`echo: ${m.content.content}`));
  await client.start();
  return {
    userId: client.userId,
    client,
    close: async () => {
      await client.stop();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** test/support/echo-child.ts in its own process; its stderr is kept for the failure message. */
function startEchoChild(
  env: Record<string, string>,
): Promise<Bot & { process: ChildProcess; log(): string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/support/echo-child.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let errors = '';
  child.stderr!.on('data', (d: Buffer) => (errors += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY ([0-9a-f]{32})/.exec(out);
      if (m) resolve({ process: child, userId: m[1]!, close, log: () => errors });
    });
    child.once('exit', (code) => reject(new Error(`echo child exited early (${code}):\n${errors}`)));
  });
}

async function startPeer(brokerUrl: string, prefix: string) {
  const peer = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: brokerUrl },
    topicPrefix: prefix,
  });
  const replies: ReceivedMessage[] = [];
  peer.on('message', (m) => replies.push(m));
  await peer.start();
  cleanups.push(() => peer.stop());
  return { peer, replies };
}

/** Before the outage, during it (the process is gone), after it (a new one is starting or up). */
type Phase = 'before' | 'down' | 'after';

interface SendResult {
  id: string;
  calledIn: Phase;
  resolvedIn: Phase;
}

/**
 * Calls send() every `paceMs` without waiting for the previous one, so calls keep coming while the
 * broker is away; the first message is awaited so the session exists before anything else.
 */
async function sendPaced(
  peer: RelayClient,
  botId: string,
  paceMs: number,
  phase: () => Phase,
): Promise<PromiseSettledResult<SendResult>[]> {
  const sends: Promise<SendResult>[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const calledIn = phase();
    const p = peer.send(botId, `n:${i}`).then(({ id }) => ({ id, calledIn, resolvedIn: phase() }));
    sends.push(p);
    if (i === 0) await p;
    else await sleep(paceMs);
  }
  return Promise.allSettled(sends);
}

function expectOneReplyPerMessage(replies: ReceivedMessage[], sent: SendResult[]): void {
  const texts = replies.map((r) => r.content.content);
  expect(texts.length).toBe(MESSAGES);
  expect(new Set(texts).size).toBe(MESSAGES);
  expect([...texts].sort()).toEqual(sent.map((_, i) => `echo: n:${i}`).sort());
  expect(replies.map((r) => r.content.replyTo).sort()).toEqual(sent.map((s) => s.id).sort());
}

function fulfilled(results: PromiseSettledResult<SendResult>[]): SendResult[] {
  const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(rejected.map((r) => String(r.reason))).toEqual([]);
  return results.map((r) => (r as PromiseFulfilledResult<SendResult>).value);
}

// ------------------------------------------------------------------ tests

// Decided when the file loads, so a missing binary shows as a skipped test rather than a passed one.
const haveMosquitto = mosquittoInstalled();
const havePostgresBin = findPostgresBin() !== undefined;
if (!haveMosquitto)
  console.warn('no mosquitto binary: skipping the broker restart test (it needs a persistent broker)');
if (!havePostgresBin) console.warn('no /usr/lib/postgresql/*/bin/initdb: skipping the database restart test');

const RESTARTS = 'infrastructure restarts mid-run: no message lost, clients resume by themselves';

describe(RESTARTS, () => {
  const test = haveMosquitto ? it : it.skip;
  test(`Mosquitto ${KILL_SIGNAL} and restart on the same port`, async () => {
    const broker = await startPersistentMosquitto();
    cleanups.push(() => broker.close());
    const prefix = uniqueName('restart-mq');
    const bot = await startInProcessBot(broker.url, prefix);
    cleanups.push(() => bot.close());
    const { peer, replies } = await startPeer(broker.url, prefix);

    let phase: Phase = 'before';
    const sending = sendPaced(peer, bot.userId, 60, () => phase);
    // Let part of the run go through, then take the broker away while sends keep coming.
    await until(() => replies.length >= 20, 20_000, 'the first replies');
    await broker.stop(KILL_SIGNAL);
    phase = 'down';
    const repliesWhenStopped = replies.length;
    await sleep(OUTAGE_MS);
    phase = 'after';
    await broker.start();

    if (KILL_SIGNAL === 'SIGKILL') {
      // Report only: a killed Mosquitto forgets what it acknowledged since its last snapshot.
      const settled = await Promise.race([sending, sleep(20_000).then(() => undefined)]);
      await sleep(5000);
      const texts = new Set(replies.map((r) => r.content.content));
      const missing = [...Array(MESSAGES).keys()].filter((i) => !texts.has(`echo: n:${i}`));
      console.warn(
        `SIGKILL report: sends settled=${settled !== undefined}, ` +
          `rejected=${settled?.filter((r) => r.status === 'rejected').length ?? 'n/a'}, ` +
          `replies=${replies.length}/${MESSAGES}, replies before the kill=${repliesWhenStopped}, ` +
          `missing=${JSON.stringify(missing)}, peer drops=${JSON.stringify(peer.drops.snapshot())}`,
      );
      return;
    }

    const sent = fulfilled(await sending);
    // The broker was away long enough for several calls; nothing could settle while it was gone,
    // and every call made meanwhile resolved once it was back instead of throwing.
    expect(sent.filter((s) => s.calledIn === 'down').length).toBeGreaterThan(5);
    expect(sent.filter((s) => s.resolvedIn === 'down')).toEqual([]);
    await until(() => replies.length >= MESSAGES, 30_000, `${MESSAGES} replies`).catch((e: Error) => {
      const texts = new Set(replies.map((r) => r.content.content));
      const missing = [...Array(MESSAGES).keys()].filter((i) => !texts.has(`echo: n:${i}`));
      throw new Error(
        `${e.message}: ${replies.length} arrived, missing ${JSON.stringify(missing)}, ` +
          `replies when stopped ${repliesWhenStopped}, bot drops ${JSON.stringify(bot.client?.drops.snapshot())}, ` +
          `peer drops ${JSON.stringify(peer.drops.snapshot())}\n${broker.log()}`,
      );
    });
    await sleep(500); // a duplicate would arrive now
    expectOneReplyPerMessage(replies, sent);
    expect(repliesWhenStopped).toBeLessThan(MESSAGES);
    expect(peer.drops.get('mls')).toBe(0);
    expect(peer.drops.get('content')).toBe(0);
    expect(peer.connected).toBe(true);
    expect(bot.client?.connected).toBe(true);
  }, 60_000);
});

describe(RESTARTS, () => {
  const test = havePostgresBin ? it : it.skip;
  test('PostgreSQL fast shutdown and restart under the echo bot', async () => {
    const cluster = await startPrivatePostgres();
    if (!cluster) throw new Error('the PostgreSQL binaries found when the file loaded are gone');
    cleanups.push(() => cluster.close());
    const broker: TestBroker = await getTestBroker();
    cleanups.push(() => broker.close());
    const prefix = uniqueName('restart-pg');
    const bot = await startEchoChild({
      DATABASE_URL: cluster.url,
      RELAY_BROKER_URL: broker.url,
      RELAY_PREFIX: prefix,
    });
    cleanups.push(() => bot.close());
    const { peer, replies } = await startPeer(broker.url, prefix);

    let phase: Phase = 'before';
    const sending = sendPaced(peer, bot.userId, 60, () => phase);
    await until(() => replies.length >= 20, 20_000, 'the first replies');
    await cluster.stop('fast');
    phase = 'down';
    const repliesWhenStopped = replies.length;
    await sleep(OUTAGE_MS);
    const repliesWhileDown = replies.length;
    phase = 'after';
    await cluster.start();

    const sent = fulfilled(await sending);
    // Messages kept arriving at the bot while it could not commit them.
    expect(sent.filter((s) => s.calledIn === 'down').length).toBeGreaterThan(5);
    await until(
      () => replies.length >= MESSAGES || bot.process.exitCode !== null,
      40_000,
      `${MESSAGES} replies`,
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${replies.length} arrived; echo child stderr:\n${bot.log()}`);
    });
    if (bot.process.exitCode !== null) throw new Error(`echo child exited:\n${bot.log()}`);
    await sleep(500); // a duplicate would arrive now
    expectOneReplyPerMessage(replies, sent);
    // Nothing could be committed while the database was away (only replies already in flight arrive).
    expect(repliesWhileDown - repliesWhenStopped).toBeLessThanOrEqual(5);
    expect(repliesWhenStopped).toBeLessThan(MESSAGES);
    expect(peer.drops.get('mls')).toBe(0);

    // The bot's database ends consistent: nothing left in the outbox, one session.
    const ds = await createRelayDataSource({ url: cluster.url });
    const store = new TypeOrmRelayStore(ds);
    try {
      expect(await store.listOutbox()).toEqual([]);
      expect(await store.listSessions()).toHaveLength(1);
    } finally {
      await store.close();
    }
  }, 60_000);
});
