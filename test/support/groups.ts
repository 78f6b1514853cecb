/**
 * Helpers for group tests: clients on one topic prefix, each with its own store (Postgres when it
 * answers and the caller asks for it, else memory), and waits on group events and messages.
 */
import {
  MemoryRelayStore,
  RelayClient,
  type GroupEvent,
  type ReceivedMessage,
  type RelayClientOptions,
  type RelayStore,
} from '../../framework/relay/index.js';
import { pino } from 'pino';
import { createRelayDataSource, TypeOrmRelayStore } from '../../framework/store/index.js';
import { createPgSchema, dropPgSchema, PG_URL, postgresAnswers } from './postgres.js';
import { getTestBroker, uniqueName, type TestBroker } from './broker.js';

export const GROUP_TEST_POW_BITS = 8;

export interface Member {
  client: RelayClient;
  store: RelayStore;
  messages: ReceivedMessage[];
  events: GroupEvent[];
  /** The client's last debug log lines, when the world keeps them (GroupWorld's `keepLogs`). */
  log: string[];
}

/** Debug lines kept per member with `keepLogs`: enough for a test's drops, bounded for long runs. */
const KEPT_LOG_LINES = 500;

let warnedNoPostgres = false;

export class GroupWorld {
  readonly prefix = uniqueName('grp');
  readonly members: Member[] = [];
  private readonly schemas: string[] = [];

  /**
   * `keepLogs`: each member's debug log is kept in memory (Member.log), so that a failing test can
   * say why a message was dropped without a rerun under RELAY_TEST_LOG_DIR.
   */
  constructor(
    private readonly brokerUrl: string,
    private readonly opts: { keepLogs?: boolean } = {},
  ) {}

  /** A store on its own Postgres schema when Postgres answers, else in memory (said once). */
  async durableStore(): Promise<RelayStore> {
    if (!(await postgresAnswers())) {
      if (!warnedNoPostgres) console.warn('Postgres does not answer: group tests use in-memory stores');
      warnedNoPostgres = true;
      return new MemoryRelayStore();
    }
    const schema = uniqueName('g').replace(/-/g, '_');
    await createPgSchema(schema);
    this.schemas.push(schema);
    return new TypeOrmRelayStore(await createRelayDataSource({ url: PG_URL, schema }));
  }

  async start(
    store: RelayStore = new MemoryRelayStore(),
    options: Partial<RelayClientOptions> = {},
  ): Promise<Member> {
    // RELAY_TEST_LOG_DIR=dir writes each client's debug log there, for chasing a failure.
    const logDir = process.env.RELAY_TEST_LOG_DIR;
    const log: string[] = [];
    const keep = {
      write: (line: string) => {
        if (log.push(line.trimEnd()) > KEPT_LOG_LINES) log.shift();
      },
    };
    const logger = logDir
      ? pino({ level: 'debug' }, pino.destination(`${logDir}/${uniqueName('client')}.log`))
      : this.opts.keepLogs
        ? pino({ level: 'debug' }, keep)
        : undefined;
    const client = await RelayClient.create({
      ...(logger ? { logger } : {}),
      store,
      broker: { url: this.brokerUrl },
      topicPrefix: this.prefix,
      powBits: GROUP_TEST_POW_BITS,
      welcomeQuota: { perSenderPerMinute: 200, totalPerMinute: 1000 },
      groups: { commitDelayMs: 100 },
      ...options,
    });
    const member: Member = { client, store, messages: [], events: [], log };
    client.on('message', (m) => member.messages.push(m));
    client.on('group', (e) => member.events.push(e));
    await client.start();
    this.members.push(member);
    return member;
  }

  /** Stops a member's client but keeps its store (and its broker session) for a restart. */
  async stop(member: Member): Promise<void> {
    await member.client.stop();
    this.members.splice(this.members.indexOf(member), 1);
  }

  async close(): Promise<void> {
    await Promise.all(this.members.splice(0).map((m) => m.client.stop().catch(() => undefined)));
    for (const s of this.schemas) await dropPgSchema(s).catch(() => undefined);
  }
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function groupTexts(member: Member, groupId: string): string[] {
  return member.messages
    .filter((m) => m.conversation.kind === 'group' && m.conversation.groupId === groupId)
    .map((m) => m.content.content);
}

export async function epochs(
  members: readonly Member[],
  groupId: string,
): Promise<Array<bigint | undefined>> {
  return Promise.all(members.map(async (m) => (await m.client.group(groupId))?.epoch));
}

/** Every member knows the group, at the same epoch, with the same member list. */
export async function converged(members: readonly Member[], groupId: string): Promise<boolean> {
  const infos = await Promise.all(members.map((m) => m.client.group(groupId)));
  if (infos.some((i) => i === undefined)) return false;
  const first = infos[0]!;
  const ids = (i: (typeof infos)[number]) =>
    i!.members
      .map((x) => x.userId)
      .sort()
      .join(',');
  return infos.every((i) => i!.epoch === first.epoch && ids(i) === ids(first));
}

/** What useGroupWorld() gives a test file. */
export interface GroupWorldFixture {
  /** This test's world (a new one per test, on the file's broker). */
  world(): GroupWorld;
  broker(): TestBroker;
  /** Runs `fn` when the test ends, before its world closes. */
  onCleanup(fn: () => Promise<unknown>): void;
}

/**
 * The usual group test file: one test broker for the file, a new GroupWorld per test, closed (after
 * the test's own cleanups) when it ends. Registers the jest hooks itself.
 */
export function useGroupWorld(): GroupWorldFixture {
  let broker: TestBroker | undefined;
  let world: GroupWorld | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    broker = await getTestBroker();
  });
  afterAll(async () => {
    await broker?.close();
  });
  beforeEach(() => {
    world = new GroupWorld(fixture.broker().url);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c().catch(() => undefined);
    await world?.close();
  });
  const fixture: GroupWorldFixture = {
    world: () => {
      if (!world) throw new Error('useGroupWorld: the world is made in beforeEach');
      return world;
    },
    broker: () => {
      if (!broker) throw new Error('useGroupWorld: the broker starts in beforeAll');
      return broker;
    },
    onCleanup: (fn) => cleanups.push(fn),
  };
  return fixture;
}
