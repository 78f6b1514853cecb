/**
 * Crash safety (ARCHITECTURE.md "One inbound message, end to end"): an echo process on a durable
 * store is killed with SIGKILL at random points while a peer sends numbered messages. After every
 * restart it resumes; at the end the peer holds exactly one decryptable reply per message.
 * RELAY_CHAOS_CYCLES sets the number of kills (default 10; `npm run chaos -- --cycles N`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryRelayStore, RelayClient, type ReceivedMessage } from '../../framework/relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { getTestBroker, uniqueName, type TestBroker } from '../support/broker.js';
import { postgresAnswers, createPgSchema, dropPgSchema, PG_URL } from '../support/postgres.js';

const CYCLES = Number(process.env.RELAY_CHAOS_CYCLES ?? 10);
const MESSAGES = 200;
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

let broker: TestBroker;
beforeAll(async () => {
  broker = await getTestBroker();
});
afterAll(async () => {
  await broker.close();
});

interface Child {
  process: ChildProcess;
  userId: string;
}

function startChild(env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/support/echo-child.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY ([0-9a-f]{32})/.exec(out);
      if (m) resolve({ process: child, userId: m[1]! });
    });
    child.once('exit', (code) => reject(new Error(`echo child exited early (${code})`)));
  });
}

async function kill(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  const exited = new Promise((r) => child.process.once('exit', r));
  child.process.kill('SIGKILL');
  await exited;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await sleep(50);
  }
}

/** After the run: one session, nothing left in the outbox, no half-written rows. */
async function expectConsistentStore(env: Record<string, string>): Promise<void> {
  const ds = await createRelayDataSource(
    env.DATABASE_URL
      ? { url: env.DATABASE_URL, ...(env.RELAY_PG_SCHEMA ? { schema: env.RELAY_PG_SCHEMA } : {}) }
      : { sqlitePath: env.RELAY_SQLITE_PATH! },
  );
  const store = new TypeOrmRelayStore(ds);
  try {
    expect(await store.listOutbox()).toEqual([]);
    const sessions = await store.listSessions();
    expect(sessions).toHaveLength(1);
    expect(sessions[0]!.version).toBeGreaterThan(MESSAGES / 2);
    expect(await store.loadIdentity()).toBeDefined();
  } finally {
    await store.close();
  }
}

async function chaosRun(env: Record<string, string>): Promise<void> {
  const prefix = uniqueName('crash');
  const childEnv = { ...env, RELAY_BROKER_URL: broker.url, RELAY_PREFIX: prefix };
  let child = await startChild(childEnv);
  const botId = child.userId;
  const peer = await RelayClient.create({
    store: new MemoryRelayStore(),
    broker: { url: broker.url },
    topicPrefix: prefix,
  });
  const replies: ReceivedMessage[] = [];
  peer.on('message', (m) => replies.push(m));
  await peer.start();
  const ids: string[] = [];
  // Sending is paced over the whole kill schedule, so kills land while messages are in flight.
  const paceMs = (CYCLES * 2000) / MESSAGES;
  let sending = true;
  const sender = (async () => {
    for (let i = 0; i < MESSAGES; i++) {
      ids.push((await peer.send(botId, `n:${i}`)).id);
      await sleep(Math.random() * 2 * paceMs);
    }
    sending = false;
  })();
  let killsMidRun = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    await sleep(150 + Math.random() * 1500);
    if (replies.length < MESSAGES) killsMidRun++;
    await kill(child);
    child = await startChild(childEnv);
    expect(child.userId).toBe(botId);
  }
  await sender;
  expect(sending).toBe(false);
  try {
    await until(() => replies.length >= MESSAGES, 120_000);
    await sleep(500); // a duplicate would arrive now
    const texts = replies.map((r) => r.content.content);
    expect(texts.length).toBe(MESSAGES);
    expect(new Set(texts).size).toBe(MESSAGES);
    expect(texts.sort()).toEqual(ids.map((_, i) => `echo: n:${i}`).sort());
    expect(replies.map((r) => r.content.replyTo).sort()).toEqual([...ids].sort());
    expect(peer.drops.get('mls')).toBe(0);
    expect(peer.drops.get('content')).toBe(0);
    expect(killsMidRun).toBeGreaterThanOrEqual(Math.ceil(CYCLES / 2));
    await kill(child);
    await expectConsistentStore(env);
  } finally {
    await kill(child);
    await peer.stop();
  }
}

describe('SIGKILL at random points: exactly one reply per message', () => {
  test(`SQLite, ${CYCLES} kill cycles`, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'relay-crash-'));
    try {
      await chaosRun({ RELAY_SQLITE_PATH: path.join(dir, 'relay.sqlite') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  test(`Postgres, ${CYCLES} kill cycles`, async () => {
    if (!(await postgresAnswers())) {
      console.warn('Postgres does not answer on 127.0.0.1:5432: skipping the Postgres crash test');
      return;
    }
    const schema = `crash_${randomBytes(4).toString('hex')}`;
    await createPgSchema(schema);
    try {
      await chaosRun({ DATABASE_URL: PG_URL, RELAY_PG_SCHEMA: schema });
    } finally {
      await dropPgSchema(schema);
    }
  }, 300_000);
});
