/**
 * An end-to-end test harness for bot authors: the bot runs as it would in production (RelayClient
 * + BotRuntime on a real MQTT broker and a real database), and the test talks to it through real
 * Relay peers, so every message is sealed, proof-of-work stamped and MLS-encrypted on the way.
 *
 *   const h = await createTestHarness(EchoBot);
 *   const alice = await h.peer();
 *   await alice.send('/echo hi');
 *   expect((await alice.nextReply()).content).toBe('hi');
 *   await h.restart(); // same store: sessions, rate limits and scheduled jobs survive
 *   await h.close();
 *
 * Groups: a peer creates a group with the bot in it and talks there; or the bot creates one and the
 * peers wait to be in it:
 *
 *   const g = await alice.createGroup({ name: 'team' }); // alice, the bot
 *   await alice.sendToGroup(g.groupId, '/echo@echo hi');
 *   expect((await alice.nextGroupMessage(g.groupId)).content).toBe('hi');
 *
 *   const made = await h.bot.runtime.createGroup('ops', [alice.userId, bob.userId]);
 *   await bob.waitForGroup(made.groupId);
 *
 * Broker: `brokerUrl`, else an embedded one started for the harness. Database: `databaseUrl`
 * (Postgres, optionally in `schema`), else `sqlitePath`, else an SQLite file in a temp directory
 * that close() removes. Every harness uses its own topic prefix, so harnesses can share a broker.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { BotRuntime, type BotRuntimeOptions } from '../bot/index.js';
import type { ReceivedMessage } from '../relay/client.js';
import type { GroupEvent, GroupInfo, GroupOptions } from '../relay/group-client.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../relay/embedded-broker.js';
import { ConfigError } from '../relay/errors.js';
import { MemoryRelayStore, RelayClient, type RelayStore } from '../relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../store/index.js';

/** How long nextReply() waits for the bot by default (ms). */
export const DEFAULT_REPLY_TIMEOUT_MS = 30_000;
/** Low, so first contact in tests costs milliseconds; production bots keep the default 18. */
export const DEFAULT_TEST_POW_BITS = 8;

/** A bot class createTestHarness() can construct. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type BotConstructor = new (...args: any[]) => object;

/** createTestHarness()'s options: broker, database, bot runtime options, PoW bits, reply timeout, logger, groups. */
export interface TestHarnessOptions {
  /** An MQTT 5 broker to use; default: an embedded broker owned by the harness. */
  brokerUrl?: string;
  /** postgres://… for the bot's store; default SQLite. */
  databaseUrl?: string;
  /** Postgres schema for the relay tables (created when missing). */
  schema?: string;
  /** SQLite file for the bot's store; default: a file in a temp directory removed by close(). */
  sqlitePath?: string;
  runtimeOptions?: BotRuntimeOptions;
  /** Called on every start of the bot (also after restart()), e.g. `(rt) => rt.use(plugin)`. */
  setup?: (runtime: BotRuntime) => void;
  /** Proof-of-work bits the bot and the peers demand (default 8). */
  powBits?: number;
  /** How long nextReply() waits by default (30 s). */
  replyTimeoutMs?: number;
  /** Where the bot's runtime and client log; silent by default. */
  logger?: Logger;
  /** Group options of the bot's client (invitation policy, limits, commit delay). */
  groups?: GroupOptions;
}

/** A reply the bot sent to a test peer. */
export interface TestReply {
  readonly content: string;
  readonly type: string;
  readonly id: string | undefined;
  readonly replyTo: string | undefined;
}

/** A message seen on a group's topic. */
export interface TestGroupMessage extends TestReply {
  readonly from: string;
  readonly groupId: string;
}

/** A user talking to the bot under test: send() messages, await nextReply(). */
export interface TestPeer {
  readonly userId: string;
  /** The peer's RelayClient, for what the harness does not cover. */
  readonly client: RelayClient;
  /** Every message the bot sent this peer directly, in arrival order (also those nextReply() returned). */
  readonly replies: readonly TestReply[];
  /** Every group event of this peer's client, in order. */
  readonly groupEvents: readonly GroupEvent[];
  /**
   * Creates a group with this peer as its committer. `members` (user ids) default to the bot;
   * resolves once the invitations are published, not when the invitees have joined.
   */
  createGroup(options?: { members?: readonly string[]; name?: string }): Promise<GroupInfo>;
  /** Posts text to a group this peer is in; resolves when the broker accepted it. */
  sendToGroup(groupId: string, text: string): Promise<{ id: string }>;
  /** Every message others posted in the group, in arrival order. */
  groupMessages(groupId: string): readonly TestGroupMessage[];
  /**
   * The next message in the group from `from` (default: the bot) that no earlier call for that
   * group and sender returned.
   */
  nextGroupMessage(
    groupId: string,
    options?: { from?: string; timeoutMs?: number },
  ): Promise<TestGroupMessage>;
  nextGroupMessages(
    groupId: string,
    n: number,
    options?: { from?: string; timeoutMs?: number },
  ): Promise<TestGroupMessage[]>;
  /**
   * The bot's answer in the group to one message (by the id sendToGroup() returned): its message
   * whose reply_to is that id, whatever else the bot said in the group meanwhile.
   */
  groupReplyTo(groupId: string, messageId: string, timeoutMs?: number): Promise<TestGroupMessage>;
  /**
   * Resolves with the group once this peer is in it (e.g. after an invitation) and `until` holds
   * for it, for instance `(g) => g.members.length === 3` after an add.
   */
  waitForGroup(groupId: string, until?: (g: GroupInfo) => boolean, timeoutMs?: number): Promise<GroupInfo>;
  /** Sends text to the bot; resolves when the broker accepted it. */
  send(text: string): Promise<{ id: string }>;
  /** The next message from the bot that no earlier nextReply() returned. */
  nextReply(timeoutMs?: number): Promise<TestReply>;
  /** The next `n` messages from the bot. */
  nextReplies(n: number, timeoutMs?: number): Promise<TestReply[]>;
}

/** The bot under test: its user id, name, runtime, client, store and instance. */
export interface TestBot {
  readonly userId: string;
  readonly name: string;
  readonly runtime: BotRuntime;
  readonly client: RelayClient;
  /** The bot's store, for assertions on what was committed (e.g. listConversationData). */
  readonly store: RelayStore;
  /** The bot instance currently running (a new one after restart() when a class was given). */
  readonly instance: object;
}

/** A bot running on a real broker and store for tests; peer() adds users, close() stops everything. */
export interface TestHarness {
  readonly bot: TestBot;
  readonly brokerUrl: string;
  readonly topicPrefix: string;
  /** A new Relay user with its own identity, connected to the same broker. */
  peer(): Promise<TestPeer>;
  /** Resolves once the bot has committed the message with this id (as returned by peer.send()). */
  processed(messageId: string, timeoutMs?: number): Promise<void>;
  /** Stops the bot (runtime, client, store) and starts it again on the same store and identity. */
  restart(): Promise<void>;
  /** Stops the bot only; peers keep running, and the broker keeps what they send meanwhile. */
  stop(): Promise<void>;
  /** Starts a stopped bot again on the same store and identity. */
  start(): Promise<void>;
  /** Stops everything the harness started and removes its temp files. Safe to call twice. */
  close(): Promise<void>;
}

interface Waiter {
  check: () => boolean;
  resolve: () => void;
}

/** Resolves when `check` holds; re-checked whenever `notify` is called. */
class Signal {
  private waiters: Waiter[] = [];

  notify(): void {
    const ready = this.waiters.filter((w) => w.check());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  wait(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`test harness: ${what()} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

/** How often waitForGroup() looks again when no group event arrived meanwhile. */
const GROUP_POLL_MS = 100;

class Peer implements TestPeer {
  readonly replies: TestReply[] = [];
  readonly groupEvents: GroupEvent[] = [];
  private cursor = 0;
  private readonly arrived = new Signal();
  private readonly inGroups = new Map<string, TestGroupMessage[]>();
  /** `${groupId}:${sender}` → how many of that sender's messages were returned. */
  private readonly groupCursors = new Map<string, number>();
  private readonly groupChanged = new Signal();

  constructor(
    readonly client: RelayClient,
    private readonly botId: () => string,
    private readonly timeoutMs: number,
  ) {
    client.on('message', (m: ReceivedMessage) => {
      const reply = {
        content: m.content.content,
        type: m.content.type,
        id: m.content.id,
        replyTo: m.content.replyTo,
      };
      if (m.conversation.kind === 'group') {
        const groupId = m.conversation.groupId;
        const list = this.inGroups.get(groupId) ?? [];
        list.push({ ...reply, from: m.from, groupId });
        this.inGroups.set(groupId, list);
      } else if (m.from === this.botId()) {
        this.replies.push(reply);
      }
      this.arrived.notify();
    });
    client.on('group', (e: GroupEvent) => {
      this.groupEvents.push(e);
      this.groupChanged.notify();
    });
  }

  get userId(): string {
    return this.client.userId;
  }

  send(text: string): Promise<{ id: string }> {
    return this.client.send(this.botId(), text);
  }

  async nextReply(timeoutMs = this.timeoutMs): Promise<TestReply> {
    const [reply] = await this.nextReplies(1, timeoutMs);
    return reply!;
  }

  async nextReplies(n: number, timeoutMs = this.timeoutMs): Promise<TestReply[]> {
    const want = this.cursor + n;
    await this.arrived.wait(
      () => this.replies.length >= want,
      timeoutMs,
      () =>
        `expected ${n} more repl${n === 1 ? 'y' : 'ies'} from the bot, got ${this.replies.length - this.cursor}` +
        ` (all replies so far: ${JSON.stringify(this.replies.map((r) => r.content.slice(0, 80)))})`,
    );
    const out = this.replies.slice(this.cursor, want);
    this.cursor = want;
    return out;
  }

  createGroup(options: { members?: readonly string[]; name?: string } = {}): Promise<GroupInfo> {
    return this.client.createGroup(
      options.members ?? [this.botId()],
      options.name !== undefined ? { name: options.name } : {},
    );
  }

  sendToGroup(groupId: string, text: string): Promise<{ id: string }> {
    return this.client.sendToGroup(groupId, text);
  }

  groupMessages(groupId: string): readonly TestGroupMessage[] {
    return this.inGroups.get(groupId) ?? [];
  }

  async nextGroupMessage(
    groupId: string,
    options: { from?: string; timeoutMs?: number } = {},
  ): Promise<TestGroupMessage> {
    const [message] = await this.nextGroupMessages(groupId, 1, options);
    return message!;
  }

  async nextGroupMessages(
    groupId: string,
    n: number,
    options: { from?: string; timeoutMs?: number } = {},
  ): Promise<TestGroupMessage[]> {
    const from = options.from ?? this.botId();
    const key = `${groupId}:${from}`;
    const seen = this.groupCursors.get(key) ?? 0;
    const theirs = (): TestGroupMessage[] => this.groupMessages(groupId).filter((m) => m.from === from);
    await this.arrived.wait(
      () => theirs().length >= seen + n,
      options.timeoutMs ?? this.timeoutMs,
      () =>
        `expected ${n} more group message${n === 1 ? '' : 's'} from ${from === this.botId() ? 'the bot' : from}` +
        ` in ${groupId.slice(0, 12)}…, got ${theirs().length - seen}` +
        ` (everything in the group so far: ${JSON.stringify(this.groupMessages(groupId).map((m) => m.content.slice(0, 80)))})`,
    );
    this.groupCursors.set(key, seen + n);
    return theirs().slice(seen, seen + n);
  }

  async groupReplyTo(
    groupId: string,
    messageId: string,
    timeoutMs = this.timeoutMs,
  ): Promise<TestGroupMessage> {
    const find = (): TestGroupMessage | undefined =>
      this.groupMessages(groupId).find((m) => m.from === this.botId() && m.replyTo === messageId);
    await this.arrived.wait(
      () => find() !== undefined,
      timeoutMs,
      () =>
        `the bot did not answer message ${messageId} in ${groupId.slice(0, 12)}…` +
        ` (its messages there: ${JSON.stringify(
          this.groupMessages(groupId)
            .filter((m) => m.from === this.botId())
            .map((m) => m.content.slice(0, 80)),
        )})`,
    );
    return find()!;
  }

  async waitForGroup(
    groupId: string,
    until: (g: GroupInfo) => boolean = () => true,
    timeoutMs = this.timeoutMs,
  ): Promise<GroupInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.client.group(groupId);
      if (info && until(info)) return info;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `test harness: ${info ? 'the group did not reach the expected state' : 'this peer did not join the group'} ${groupId.slice(0, 12)}… within ${timeoutMs} ms` +
            (info ? ` (members: ${info.members.map((m) => m.userId.slice(0, 8)).join(', ')})` : ''),
        );
      }
      // Group events say when to look again; the poll covers changes that emit none.
      const events = this.groupEvents.length;
      await this.groupChanged
        .wait(
          () => this.groupEvents.length > events,
          Math.min(left, GROUP_POLL_MS),
          () => '',
        )
        .catch(() => undefined);
    }
  }
}

interface Running {
  runtime: BotRuntime;
  client: RelayClient;
  store: TypeOrmRelayStore;
  instance: object;
}

/**
 * `bot` is a class (constructed anew on every start), an instance, or an array of instances (a bot
 * plus handler plugins such as PingPlugin), as BotRuntime takes them.
 */
export async function createTestHarness(
  bot: BotConstructor | object,
  options: TestHarnessOptions = {},
): Promise<TestHarness> {
  const harness = new Harness(bot, options);
  try {
    await harness.open();
  } catch (e) {
    await harness.close();
    throw e;
  }
  return harness;
}

class Harness implements TestHarness {
  readonly topicPrefix = `relay-test-${randomBytes(6).toString('hex')}`;
  private broker: EmbeddedBroker | undefined;
  private url: string | undefined;
  private tempDir: string | undefined;
  private sqlitePath: string | undefined;
  private running: Running | undefined;
  /** Stable across restarts (the identity is in the store); known after the first start. */
  private botUserId: string | undefined;
  private readonly peers: Peer[] = [];
  private readonly processedIds = new Set<string>();
  private readonly processedSignal = new Signal();
  private readonly timeoutMs: number;
  private readonly powBits: number;
  private readonly log: Logger;
  private closed = false;

  constructor(
    private readonly botSpec: BotConstructor | object,
    private readonly options: TestHarnessOptions,
  ) {
    if (typeof botSpec !== 'function' && (typeof botSpec !== 'object' || botSpec === null)) {
      throw new ConfigError('createTestHarness takes a bot class or a bot instance');
    }
    if (options.databaseUrl !== undefined && options.sqlitePath !== undefined) {
      throw new ConfigError('createTestHarness: give databaseUrl or sqlitePath, not both');
    }
    this.timeoutMs = options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
    this.powBits = options.powBits ?? DEFAULT_TEST_POW_BITS;
    this.log = options.logger ?? pino({ level: 'silent' });
  }

  get brokerUrl(): string {
    if (this.url === undefined) throw new ConfigError('the harness is not open');
    return this.url;
  }

  get bot(): TestBot {
    const r = this.running;
    if (!r) throw new ConfigError('the bot is not running (closed, or a restart failed)');
    return {
      userId: r.client.userId,
      name: r.runtime.name,
      runtime: r.runtime,
      client: r.client,
      store: r.store,
      instance: r.instance,
    };
  }

  async open(): Promise<void> {
    if (this.options.brokerUrl !== undefined) {
      this.url = this.options.brokerUrl;
    } else {
      this.broker = await startEmbeddedBroker({ port: 0 });
      this.url = this.broker.url;
    }
    if (this.options.databaseUrl === undefined) {
      if (this.options.sqlitePath !== undefined) {
        this.sqlitePath = this.options.sqlitePath;
      } else {
        this.tempDir = await mkdtemp(path.join(tmpdir(), 'relay-bot-harness-'));
        this.sqlitePath = path.join(this.tempDir, 'bot.sqlite');
      }
    }
    await this.startBot();
  }

  async peer(): Promise<TestPeer> {
    const client = await RelayClient.create({
      store: new MemoryRelayStore(),
      broker: { url: this.brokerUrl },
      topicPrefix: this.topicPrefix,
      powBits: this.powBits,
      powWorkers: 0,
    });
    const peer = new Peer(client, () => this.botUserId!, this.timeoutMs);
    this.peers.push(peer);
    await client.start();
    return peer;
  }

  processed(messageId: string, timeoutMs = this.timeoutMs): Promise<void> {
    return this.processedSignal.wait(
      () => this.processedIds.has(messageId),
      timeoutMs,
      () => `the bot did not process message ${messageId}`,
    );
  }

  async restart(): Promise<void> {
    await this.stopBot();
    await this.startBot();
  }

  stop(): Promise<void> {
    return this.stopBot();
  }

  async start(): Promise<void> {
    if (this.closed) throw new ConfigError('the harness is closed');
    if (this.running) throw new ConfigError('the bot is already running');
    await this.startBot();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const errors: unknown[] = [];
    const attempt = async (work: () => Promise<unknown>): Promise<void> => {
      try {
        await work();
      } catch (e) {
        errors.push(e);
      }
    };
    await attempt(() => this.stopBot());
    for (const p of this.peers.splice(0)) await attempt(() => p.client.stop());
    if (this.broker) await attempt(() => this.broker!.close());
    if (this.tempDir) await attempt(() => rm(this.tempDir!, { recursive: true, force: true }));
    if (errors.length > 0) throw errors[0];
  }

  private async openStore(): Promise<TypeOrmRelayStore> {
    const ds = await createRelayDataSource(
      this.options.databaseUrl !== undefined
        ? {
            url: this.options.databaseUrl,
            ...(this.options.schema !== undefined ? { schema: this.options.schema } : {}),
          }
        : { sqlitePath: this.sqlitePath! },
    );
    return new TypeOrmRelayStore(ds);
  }

  private async startBot(): Promise<void> {
    const instance =
      typeof this.botSpec === 'function' ? new (this.botSpec as BotConstructor)() : this.botSpec;
    const runtime = new BotRuntime(instance, { logger: this.log, ...this.options.runtimeOptions });
    this.options.setup?.(runtime);
    const store = await this.openStore();
    let client: RelayClient;
    try {
      client = await RelayClient.create({
        store,
        broker: { url: this.brokerUrl },
        topicPrefix: this.topicPrefix,
        powBits: this.powBits,
        powWorkers: 0,
        logger: this.log,
        ...(this.options.groups !== undefined ? { groups: this.options.groups } : {}),
      });
    } catch (e) {
      await store.close();
      throw e;
    }
    client.on('message', (m) => {
      if (m.content.id !== undefined) this.processedIds.add(m.content.id);
      this.processedSignal.notify();
    });
    // Before start(): messages the broker kept for us while we were down arrive at connect.
    runtime.attach(client, { store });
    this.running = { runtime, client, store, instance };
    this.botUserId = client.userId;
    await client.start();
  }

  private async stopBot(): Promise<void> {
    const r = this.running;
    if (!r) return;
    this.running = undefined;
    await r.runtime.stop();
    await r.client.stop();
    await r.runtime.detach();
    await r.store.close();
  }
}
