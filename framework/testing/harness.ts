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
import type { GroupOptions } from '../relay/group-types.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../relay/embedded-broker.js';
import { ConfigError } from '../relay/errors.js';
import { MemoryRelayStore, RelayClient, type RelayStore } from '../relay/index.js';
import { createRelayDataSource, TypeOrmRelayStore } from '../store/index.js';
import { Peer, Signal, type TestPeer } from './peer.js';

export type { TestGroupMessage, TestPeer, TestReply, TestTyping } from './peer.js';

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
